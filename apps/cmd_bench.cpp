// qforge bench: float32 against int8, side by side: latency, throughput,
// model size, peak memory and (with --data) accuracy and top-1 agreement.
// On a trained pair (--model F.safetensors --int8 M.qfm) or on random weights
// calibrated on random data (--arch resnet18|mobilenet_v2 --input CxHxW, built
// by apps/models like a config's model section). --train times a training step
// instead (float and QAT). A model the int8 converter refuses gets the float
// figures and, instead of the int8 ones, the converter's reason (int8_error).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "apps/checkpoint.h"
#include "apps/commands.h"
#include "apps/datasets.h"
#include "apps/models.h"
#include "apps/system_report.h"
#include "apps/timing.h"
#include "apps/trainer.h"
#include "core/autograd.h"
#include "core/blas.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/ops/gemm_f32.h"
#include "core/ops/loss.h"
#include "core/options.h"
#include "core/threads.h"
#include "nn/conv2d.h"
#include "optim/sgd.h"
#include "quant/convert.h"
#include "quant/fuse.h"
#include "quant/prepare.h"
#include "quant/runtime.h"

namespace qforge::apps {
namespace {

namespace fs = std::filesystem;

struct BenchArgs {
  std::string arch = "resnet18", stem = "imagenet", input = "3x224x224";
  std::string model, int8, data, class_map;
  std::vector<std::string> sets;  // --set model.width_mult=0.5, ...: more of the model section
  int batch = 1, threads = 0, runs = 10, warmup = 3, num_classes = 0;
  bool train = false, json = false, no_int8 = false, profile = false;
};

std::vector<int> parse_input(const std::string& s) {
  std::vector<int> v;
  size_t p = 0;
  while (p <= s.size()) {
    size_t q = s.find('x', p);
    try {
      v.push_back(std::stoi(s.substr(p, q == std::string::npos ? std::string::npos : q - p)));
    } catch (...) {
      v.clear();
      break;
    }
    if (q == std::string::npos) break;
    p = q + 1;
  }
  QF_CHECK(v.size() == 3 && v[0] > 0 && v[1] > 0 && v[2] > 0,
           "--input: expected CxHxW such as 3x224x224, got \"" + s + "\"");
  return v;
}

// The config whose model section the options describe: the network comes from the same builder as a
// config file's (apps/models), validated by the same schema, so every architecture there benches here.
Config bench_config(const BenchArgs& a, const std::vector<int>& in) {
  int classes = a.num_classes > 0 ? a.num_classes : (a.stem == "small" ? 10 : 1000);
  nlohmann::json j = {{"model", {{"arch", a.arch}, {"in_channels", in[0]}, {"num_classes", classes}, {"stem", a.stem}}},
                      {"train", {{"seed", 0}}}};
  return make_config(j, "the bench options (--arch, --stem, --input, --classes, --set)", a.sets, false);
}

// The model's name and size in the JSON, so figures from different runs say what they measured.
void describe_model(const Config& cfg, const nn::Module& net, nlohmann::json& out) {
  nlohmann::json m = cfg.j["model"];
  m.erase("init_from");
  out["arch"] = m["arch"];
  out["stem"] = m["stem"];
  out["model_config"] = m;
  int64_t params = 0;
  for (auto& [n, t] : net.named_parameters()) params += t.numel();
  out["params"] = params;
}

double time_forward(nn::Module& m, const Tensor& x, const BenchArgs& a) {
  NoGradGuard g;
  m.eval();
  return median_seconds([&] { m(x); }, a.runs, a.warmup);
}

void bench_train(const BenchArgs& a, nlohmann::json& out) {
  auto in = parse_input(a.input);
  const Config cfg = bench_config(a, in);
  const int classes = cfg.j["model"]["num_classes"];
  std::mt19937_64 rng(0);
  Tensor x = Tensor::randn({a.batch, in[0], in[1], in[2]}, rng);
  std::vector<int32_t> labels(a.batch);
  for (int i = 0; i < a.batch; ++i) labels[i] = static_cast<int32_t>(rng() % classes);
  auto step_time = [&](nn::Module& net) {
    net.train();
    optim::SGD opt(net.named_parameters(), {0.01f, 0.9f, 0.f, false, true});
    return median_seconds(
        [&] {
          opt.zero_grad();
          cross_entropy(net(x), labels).backward();
          opt.step();
        },
        std::max(3, a.runs / 2), a.warmup);
  };
  auto net = build_network(cfg);
  describe_model(cfg, *net, out);
  double s = step_time(*net);
  out["train_step_ms"] = s * 1e3;
  out["train_img_per_s"] = a.batch / s;
  if (a.no_int8) return;
  auto q = build_network(cfg);
  q->train();
  quant::fuse_modules(*q, true, in);
  quant::QConfigMapping qc;
  quant::prepare_qat(*q, qc);
  double sq = step_time(*q);
  out["qat_train_step_ms"] = sq * 1e3;
  out["qat_train_img_per_s"] = a.batch / sq;
  out["qat_over_fp32_train"] = s / sq;
}

struct Pair {
  std::shared_ptr<nn::Module> fp32, int8;
  std::shared_ptr<quant::Int8Runtime> rt;
  std::vector<int> input;
  double fp32_bytes = 0, int8_bytes = 0;  // model files
  std::optional<Config> cfg;
  std::vector<std::string> classes;
  std::string int8_error;  // why there is no int8 side (the converter refused the model)
  std::string arch;        // the float model's own (its stored config), not the data config's
};

Pair random_pair(const BenchArgs& a) {
  Pair p;
  p.input = parse_input(a.input);
  const Config cfg = bench_config(a, p.input);
  p.cfg = cfg;
  p.fp32 = build_network(cfg);
  fs::path tmp = fs::temp_directory_path() / ("qforge_bench_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  CheckpointInfo info;
  save_checkpoint((tmp / "f.safetensors").string(), *p.fp32, nullptr, cfg, info);
  p.fp32_bytes = fs::file_size(tmp / "f.safetensors");
  if (!a.no_int8) {
    try {
      auto q = build_network(cfg);
      q->eval();
      quant::fuse_modules(*q, false, p.input);
      quant::QConfigMapping qc;
      qc.global.activation.kind = "minmax";
      quant::prepare(*q, qc);
      std::mt19937_64 rng(1);
      int left = 2;
      quant::calibrate(
          *q,
          [&](Tensor& x) {
            x = Tensor::randn({std::min(a.batch, 8), p.input[0], p.input[1], p.input[2]}, rng);
            return left-- > 0;
          },
          2);
      quant::Int8Graph g = quant::convert(*q, p.input);
      g.config = cfg.j;
      quant::save_int8_model((tmp / "m.qfm").string(), g);
      p.int8_bytes = fs::file_size(tmp / "m.qfm");
      p.rt = std::make_shared<quant::Int8Runtime>(std::move(g));
      p.int8 = std::make_shared<quant::Int8Module>(p.rt);
    } catch (const Error& e) {
      // The float figures still stand; say why the int8 ones are missing.
      p.int8_error = e.what();
    }
  }
  fs::remove_all(tmp);
  return p;
}

Pair trained_pair(const BenchArgs& a) {
  QF_CHECK(!a.int8.empty(), "bench: --model needs its int8 counterpart too: --int8 M.qfm");
  Pair p;
  std::optional<Config> data_cfg;
  if (!a.data.empty() && !fs::is_directory(a.data)) data_cfg = load_data_config(a.data);
  LoadedModel f = load_model_file(a.model, data_cfg ? &*data_cfg : nullptr);
  LoadedModel q = load_model_file(a.int8, nullptr);
  QF_CHECK(q.kind == "int8", a.int8 + ": not an int8 model (.qfm)");
  QF_CHECK(f.kind != "int8", a.model + ": --model takes the float checkpoint");
  p.fp32 = f.module;
  p.int8 = q.module;
  p.rt =
      std::shared_ptr<quant::Int8Runtime>(q.module, &std::static_pointer_cast<quant::Int8Module>(q.module)->runtime());
  p.input = q.input;
  p.fp32_bytes = fs::file_size(a.model);
  p.int8_bytes = fs::file_size(a.int8);
  p.cfg = data_cfg ? *data_cfg : q.config;
  p.arch = f.config.j["model"]["arch"];
  p.classes = q.classes;
  return p;
}

void print_table(const nlohmann::json& o) {
  auto num = [&](const char* k) { return o.contains(k) ? o[k].get<double>() : -1.0; };
  auto row = [&](const char* label, double f, double q, const char* ratio) {
    if (f < 0 && q < 0) return;
    char fs_[32] = "", qs[32] = "";
    if (f >= 0) std::snprintf(fs_, sizeof fs_, "%.2f", f);
    if (q >= 0) std::snprintf(qs, sizeof qs, "%.2f", q);
    std::printf("%-26s %12s %12s %12s\n", label, fs_, qs, ratio);
  };
  char r[32];
  std::printf("\n%-26s %12s %12s %12s\n", "", "float32", "int8", "int8 vs fp32");
  int b = o["batch"];
  std::string lat = "latency batch " + std::to_string(b) + " (ms)";
  std::snprintf(r, sizeof r, "%.2fx faster", num("fp32_ms") / num("int8_ms"));
  row(lat.c_str(), num("fp32_ms"), num("int8_ms"), o.contains("int8_ms") ? r : "");
  if (o.contains("fp32_b1_ms")) {
    std::snprintf(r, sizeof r, "%.2fx faster", num("fp32_b1_ms") / num("int8_b1_ms"));
    row("latency batch 1 (ms)", num("fp32_b1_ms"), num("int8_b1_ms"), r);
  }
  std::snprintf(r, sizeof r, "%.2fx", num("int8_img_per_s") / num("fp32_img_per_s"));
  row("throughput (img/s)", num("fp32_img_per_s"), num("int8_img_per_s"), o.contains("int8_ms") ? r : "");
  std::snprintf(r, sizeof r, "%.1f%%", 100 * num("int8_file_mb") / num("fp32_file_mb"));
  row("model file (MB)", num("fp32_file_mb"), num("int8_file_mb"), o.contains("int8_file_mb") ? r : "");
  std::snprintf(r, sizeof r, "%.1f%%", 100 * num("int8_peak_mb") / num("fp32_peak_mb"));
  row("peak memory (MB)", num("fp32_peak_mb"), num("int8_peak_mb"), o.contains("int8_peak_mb") ? r : "");
  if (o.contains("fp32_top1")) {
    std::snprintf(r, sizeof r, "%+.2f pts", num("int8_top1") - num("fp32_top1"));
    row("top-1 accuracy (%)", num("fp32_top1"), num("int8_top1"), r);
    row("top-1 agreement (%)", -1, num("top1_agreement"), "");
    row("evaluation time (s)", num("fp32_eval_s"), num("int8_eval_s"), "");
  }
}

// Per-layer int8 time: runs the timed loop again with the runtime's clocks on; layers by time, slowest first.
nlohmann::json profile_int8(quant::Int8Runtime& rt, nn::Module& m, const Tensor& x, const BenchArgs& a) {
  for (int i = 0; i < a.warmup; ++i) m(x);
  rt.set_profiling(true);
  for (int i = 0; i < a.runs; ++i) m(x);
  std::vector<quant::Int8Runtime::NodeTime> t = rt.profile();
  rt.set_profiling(false);
  std::stable_sort(t.begin(), t.end(), [](const auto& u, const auto& v) { return u.seconds > v.seconds; });
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& n : t)
    rows.push_back({{"node", n.name}, {"op", n.op}, {"output", n.shape}, {"ms", 1e3 * n.seconds}});
  return rows;
}

void print_profile(const nlohmann::json& rows) {
  double total = 0;
  for (const auto& r : rows) total += r["ms"].get<double>();
  std::map<std::string, double> by_op;
  for (const auto& r : rows) by_op[r["op"].get<std::string>()] += r["ms"].get<double>();
  std::printf("\nint8 layers, slowest first (median ms per call; %.3f ms in all):\n", total);
  std::printf("  %-44s %-16s %-16s %8s %6s\n", "node", "op", "output", "ms", "%");
  for (const auto& r : rows) {
    const double ms = r["ms"].get<double>();
    std::printf("  %-44s %-16s %-16s %8.3f %5.1f%%\n", r["node"].get<std::string>().c_str(),
                r["op"].get<std::string>().c_str(), r["output"].get<std::string>().c_str(), ms, 100 * ms / total);
  }
  std::printf("by op:");
  for (const auto& [op, ms] : by_op) std::printf("  %s %.3f ms (%.1f%%)", op.c_str(), ms, 100 * ms / total);
  std::printf("\n");
}

void run_bench(const BenchArgs& a) {
  set_num_threads(a.threads);
  nlohmann::json out = {{"threads", num_threads()},
                        {"isa", cpu_summary()},
                        {"selected_isa", isa_name(selected_isa())},
                        {"batch", a.batch}};
  for (const auto& [family, name] : chosen_kernels()) out[family] = name;  // fp32_gemm, blas_core, ...
  for (const OptionInfo& o : list_options()) out["options"][o.name] = o.value;
  if (a.train) {
    out["arch"] = a.arch, out["stem"] = a.stem, out["input"] = a.input;
    bench_train(a, out);
  } else {
    Pair p = a.model.empty() ? random_pair(a) : trained_pair(a);
    out["input"] = p.input;
    if (!a.model.empty()) {
      out["model"] = a.model, out["int8_model"] = a.int8;
      out["arch"] = p.arch;
    } else {
      describe_model(*p.cfg, *p.fp32, out);
    }
    if (p.rt) out["int8_isa"] = quant::isa_name(p.rt->isa());
    if (!p.int8_error.empty()) out["int8_error"] = p.int8_error;
    std::mt19937_64 rng(0);
    Tensor x = Tensor::randn({a.batch, p.input[0], p.input[1], p.input[2]}, rng);
    Tensor x1 = Tensor::randn({1, p.input[0], p.input[1], p.input[2]}, rng);
    out["fp32_bn_folded"] = fold_for_inference(*p.fp32, p.input);
    {
      NoGradGuard g;
      (*p.fp32)(x);
      Storage::reset_peak();
      (*p.fp32)(x);
      // The layers' filters kept for inference (core/ops/conv2d.h) are the model's memory too.
      int64_t cached = 0;
      for (auto& [name, m] : p.fp32->named_modules())
        if (auto* c = dynamic_cast<nn::Conv2d*>(m.get())) cached += conv_filter_cache_bytes(*c->filter_cache());
      out["fp32_filter_cache_mb"] = cached / 1e6;
      out["fp32_peak_mb"] = (Storage::peak_bytes() + cached) / 1e6;
    }
    double f = time_forward(*p.fp32, x, a);
    out["fp32_ms"] = f * 1e3;
    out["fp32_img_per_s"] = a.batch / f;
    out["fp32_file_mb"] = p.fp32_bytes / 1e6;
    if (p.int8) {
      double q = time_forward(*p.int8, x, a);
      out["int8_ms"] = q * 1e3;
      out["int8_img_per_s"] = a.batch / q;
      out["int8_over_fp32"] = f / q;
      out["int8_peak_mb"] = (p.rt->peak_bytes() + x.numel() * 4.0) / 1e6;
      out["int8_file_mb"] = p.int8_bytes / 1e6;
      out["int8_file_pct_of_fp32"] = 100.0 * p.int8_bytes / p.fp32_bytes;
      if (a.batch != 1) {
        out["fp32_b1_ms"] = time_forward(*p.fp32, x1, a) * 1e3;
        out["int8_b1_ms"] = time_forward(*p.int8, x1, a) * 1e3;
      }
      if (a.profile) out["int8_profile"] = profile_int8(*p.rt, *p.int8, x, a);
    }
    if (!a.data.empty()) {
      QF_CHECK(!a.model.empty() && p.int8, "bench: --data needs a trained pair (--model and --int8)");
      std::shared_ptr<const data::Dataset> ds = fs::is_directory(a.data)
                                                    ? open_folder(a.data, folder_decode_spec(*p.cfg, p.input))
                                                    : open_split(*p.cfg, "test");
      if (!p.classes.empty()) ds = match_model_classes(p.classes, ds, a.data, a.class_map);
      int classes = p.cfg->j["model"]["num_classes"];
      data::Loader l1 = make_eval_loader(ds, *p.cfg, std::max(64, a.batch));
      EvalResult ef = evaluate(*p.fp32, l1, classes);
      EvalResult eq = evaluate(*p.int8, l1, classes);
      out["fp32_top1"] = ef.top1();
      out["int8_top1"] = eq.top1();
      out["top1_agreement"] = top1_agreement(ef, eq);
      out["fp32_eval_s"] = ef.seconds;
      out["int8_eval_s"] = eq.seconds;
      out["eval_images"] = ef.n;
    }
  }
  if (a.json) {
    std::printf("%s\n", out.dump(1).c_str());
    return;
  }
  std::printf("qforge bench: %d threads, CPU %s, ISA %s, BLAS %s%s\n", out["threads"].get<int>(), cpu_summary().c_str(),
              isa_name(selected_isa()), blas_core_name().c_str(),
              out.contains("int8_isa") ? (", int8 kernels " + out["int8_isa"].get<std::string>()).c_str() : "");
  std::printf("options:");
  for (const OptionInfo& o : list_options()) std::printf(" %s=%s", o.name.c_str(), o.value.c_str());
  std::printf("\nkernels:");
  for (const auto& [family, name] : chosen_kernels()) std::printf(" %s=%s", family.c_str(), name.c_str());
  std::printf("\n");
  if (a.train) {
    std::printf("training step, batch %d: float32 %.1f img/s", a.batch, out["train_img_per_s"].get<double>());
    if (out.contains("qat_train_img_per_s"))
      std::printf(", QAT %.1f img/s (%.0f%% of float)", out["qat_train_img_per_s"].get<double>(),
                  100 * out["qat_over_fp32_train"].get<double>());
    std::printf("\n");
    return;
  }
  print_table(out);
  if (out.contains("int8_profile")) print_profile(out["int8_profile"]);
  if (out.contains("int8_error")) std::printf("\nno int8 figures: %s\n", out["int8_error"].get<std::string>().c_str());
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* c = app.add_subcommand("bench", "Benchmark float32 against int8: speed, size, memory, accuracy");
  c->add_option("--model", a->model,
                "Trained float checkpoint (.safetensors, or a PyTorch .pth with --data CONFIG); with --int8")
      ->check(CLI::ExistingFile);
  c->add_option("--int8", a->int8, "Its int8 model (.qfm)")->check(CLI::ExistingFile);
  c->add_option("--data", a->data, "Dataset directory or config: adds accuracy and top-1 agreement")
      ->check(CLI::ExistingPath);
  c->add_option("--class-map", a->class_map, "With a --data directory: folder=class lines or a JSON object")
      ->check(CLI::ExistingFile);
  c->add_option(
       "--arch", a->arch,
       "Architecture, for random weights: " +
           [] {
             std::string s;
             for (auto& n : architectures()) s += (s.empty() ? "" : ", ") + n;
             return s;
           }())
      ->capture_default_str();
  c->add_option("--stem", a->stem, "Stem: imagenet (7x7/2 or 3x3/2 conv) or small (28-32 px images)")
      ->capture_default_str();
  c->add_option("--set", a->sets, "More of the model section, for random weights: --set model.width_mult=0.5");
  c->add_option("--input", a->input, "Input CxHxW, for random weights")->capture_default_str();
  c->add_option("--batch", a->batch, "Batch size")->capture_default_str();
  c->add_option("--classes", a->num_classes, "Number of classes (default 10 for small stem, else 1000)");
  c->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  c->add_option("--runs", a->runs, "Timed runs (the median is reported)")->capture_default_str();
  c->add_option("--warmup", a->warmup, "Untimed warm-up runs")->capture_default_str();
  c->add_flag("--train", a->train, "Time a training step (forward, backward, SGD), float and QAT");
  c->add_flag("--fp32-only", a->no_int8, "Skip the int8 side");
  c->add_flag("--json", a->json, "Print one JSON object");
  c->add_flag("--profile", a->profile, "Also time each int8 layer (over --runs runs at the benchmark's batch)");
  c->callback([a] { run_bench(*a); });
}

}  // namespace qforge::apps
