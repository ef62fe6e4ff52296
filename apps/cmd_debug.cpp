// qforge debug: per-layer SQNR between the float model's activations and the
// int8 graph's, worst layers first, to find the layer that loses accuracy.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "apps/commands.h"
#include "apps/datasets.h"
#include "apps/models.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/threads.h"
#include "nn/layers.h"
#include "nn/resnet.h"
#include "quant/fuse.h"
#include "quant/prepare.h"
#include "quant/runtime.h"

namespace qforge::apps {
namespace {

struct DebugArgs {
  std::string model, int8, data;
  int batches = 4, batch = 64, threads = 0;
};

void run_debug(const DebugArgs& a) {
  set_num_threads(a.threads);
  std::optional<Config> data_cfg;
  if (!std::filesystem::is_directory(a.data)) data_cfg = load_data_config(a.data);
  LoadedModel f = load_model_file(a.model, data_cfg ? &*data_cfg : nullptr);
  LoadedModel q = load_model_file(a.int8, nullptr);
  QF_CHECK(q.kind == "int8", a.int8 + ": not an int8 model (.qfm)");
  QF_CHECK(f.kind != "int8", a.model + ": give the float or prepared checkpoint as --model");
  if (f.kind == "float") {
    quant::fuse_modules(*f.module, false, q.input);  // the same layers as the int8 graph, BN folded
  } else {
    quant::set_fake_quant(*f.module, false);  // the prepared model, computing in float
  }
  f.module->eval();
  auto& rt = std::static_pointer_cast<quant::Int8Module>(q.module)->runtime();
  std::shared_ptr<const data::Dataset> ds =
      data_cfg ? open_split(*data_cfg, "test") : open_folder(a.data, folder_decode_spec(q.config, q.input));
  data::Loader loader = make_eval_loader(ds, data_cfg ? *data_cfg : q.config, a.batch);
  loader.start_epoch(0);
  std::map<std::string, std::pair<double, double>> acc;  // name -> (signal, noise) energy
  std::map<std::string, int> order;
  data::Batch b;
  for (int i = 0; i < a.batches && loader.next(b); ++i) {
    Tensor x = Tensor::from({b.n, b.c, b.h, b.w}, b.images);
    std::map<std::string, Tensor> taps;
    rt.run(x, &taps);
    std::map<const nn::Module*, std::string> names;
    for (auto& [n, m] : f.module->named_modules()) names[m.get()] = n;
    NoGradGuard ng;
    nn::Tracer tr([](const nn::Module& m) { return !nn::is_container(m); });
    (*f.module)(x);
    for (auto& e : tr.events) {
      auto it = names.find(e.module);
      if (it == names.end()) continue;
      auto t = taps.find(it->second);
      if (t == taps.end() || t->second.numel() != e.output.numel()) continue;
      if (!order.count(it->second)) order[it->second] = static_cast<int>(order.size());
      auto& [sig, noise] = acc[it->second];
      for (int64_t k = 0; k < e.output.numel(); ++k) {
        double fv = e.output.data()[k], qv = t->second.data()[k];
        sig += fv * fv;
        noise += (fv - qv) * (fv - qv);
      }
    }
  }
  QF_CHECK(!acc.empty(), "debug: no layer of " + a.model + " matches a node of " + a.int8);
  std::vector<std::pair<double, std::string>> rows;
  for (auto& [n, sn] : acc) rows.emplace_back(sn.second > 0 ? 10 * std::log10(sn.first / sn.second) : 999.0, n);
  std::sort(rows.begin(), rows.end());
  std::printf("per-layer SQNR, float (%s) against int8 (%s), %d batches; worst first\n", a.model.c_str(),
              a.int8.c_str(), a.batches);
  std::printf("%-28s %10s %6s\n", "layer", "SQNR (dB)", "depth");
  for (auto& [db, n] : rows) std::printf("%-28s %10.2f %6d\n", n.c_str(), db, order[n]);
}

}  // namespace

void add_debug_command(CLI::App& app) {
  auto a = std::make_shared<DebugArgs>();
  auto* c = app.add_subcommand("debug", "Per-layer SQNR between float and int8 activations, worst layers first");
  c->add_option("--model", a->model, "Float or prepared (QAT/PTQ) checkpoint")->required()->check(CLI::ExistingFile);
  c->add_option("--int8", a->int8, "Int8 model (.qfm)")->required()->check(CLI::ExistingFile);
  c->add_option("--data", a->data, "Dataset directory or config")->required()->check(CLI::ExistingPath);
  c->add_option("--batches", a->batches, "Batches to compare")->capture_default_str();
  c->add_option("--batch", a->batch, "Batch size")->capture_default_str();
  c->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  c->callback([a] { run_debug(*a); });
}

}  // namespace qforge::apps
