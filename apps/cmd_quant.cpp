// qforge qat CONFIG, qforge ptq CONFIG [--mode static|dynamic], qforge convert.
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "apps/config.h"
#include "apps/datasets.h"
#include "apps/distributed.h"
#include "apps/models.h"
#include "apps/timing.h"
#include "apps/trainer.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/threads.h"
#include "quant/convert.h"
#include "quant/dynamic.h"
#include "quant/prepare.h"
#include "quant/runtime.h"

namespace qforge::apps {
namespace {

struct QuantArgs {
  std::string config, mode;
  std::vector<std::string> sets;
  bool resume = false;
  int64_t max_steps = 0;
};

std::string out_file(const Config& cfg, const std::string& name) {
  return cfg.j["output"]["dir"].get<std::string>() + "/" + name;
}

Config load_quant_config(const QuantArgs& a, const char* cmd) {
  Config cfg = load_config(a.config, a.sets);
  QF_CHECK(!cfg.j["model"]["init_from"].get<std::string>().empty(),
           cfg.where("model.init_from") + ": " + cmd +
               " starts from a float checkpoint; set it (e.g. runs/x/best.safetensors)");
  set_num_threads(cfg.j["train"]["threads"]);
  if (is_rank0()) {  // a data-parallel run (qat under mpirun): rank 0 writes the files
    make_directories(cfg.j["output"]["dir"].get<std::string>());
    write_text_atomic(out_file(cfg, "config.json"), cfg.j.dump(2) + "\n");
  }
  return cfg;
}

// Converts, saves the .qfm, evaluates it on the test set and compares with the simulation.
void convert_and_check(nn::Module& prepared, const Config& cfg, const std::vector<std::string>& classes,
                       const std::vector<int>& input, const EvalResult& sim) {
  quant::Int8Graph g = quant::convert(prepared, input);
  g.classes = classes;
  g.config = cfg.j;
  std::string path = out_file(cfg, "model.qfm");
  quant::save_int8_model(path, g);
  auto rt = std::make_shared<quant::Int8Runtime>(quant::load_int8_model(path));
  quant::Int8Module m(rt);
  auto test = match_model_classes(classes, open_split(cfg, "test"), cfg.where("data.test"), "",
                                  "rename the folders to the model's class names");
  data::Loader loader = make_eval_loader(test, cfg, cfg.j["train"]["eval_batch_size"]);
  EvalResult r = evaluate(m, loader, cfg.j["model"]["num_classes"]);
  std::printf("int8 graph %s (%s kernels, %.2f MB): top-1 %.2f%% (simulation %.2f%%), top-1 agreement %.2f%%, %.2f s\n",
              path.c_str(), quant::isa_name(rt->isa()), std::filesystem::file_size(path) / 1e6, r.top1(), sim.top1(),
              top1_agreement(r, sim), r.seconds);
}

std::vector<int> input_shape(const data::Loader& l) {
  auto s = l.output_spec();
  return {s.channels, s.height, s.width};
}

void run_qat(const QuantArgs& a) {
  Config cfg = load_quant_config(a, "qat");
  auto model = build_prepared_model(cfg, "qat", true);
  auto st = quant::prepare_stats(*model);
  std::printf("qforge qat: %s, %d quantized layers, %d activation quantizers, %d threads, output %s\n",
              a.config.c_str(), st.weight_points, st.activation_points, num_threads(),
              cfg.j["output"]["dir"].get<std::string>().c_str());
  const int freeze_bn_at = cfg.j["quant"]["freeze_bn_epoch"], freeze_obs_at = cfg.j["quant"]["freeze_observer_epoch"];
  FitOptions fo;
  fo.kind = "qat";
  fo.resume = a.resume;
  fo.max_steps = a.max_steps;
  fo.on_epoch_start = [&](int epoch) {
    if (freeze_bn_at >= 0 && epoch >= freeze_bn_at) quant::freeze_bn(*model);
    if (freeze_obs_at >= 0 && epoch >= freeze_obs_at) quant::set_observers(*model, false);
  };
  FitResult r = fit(cfg, *model, fo);
  if (!r.finished || !is_rank0()) return;  // the ranks hold one model: rank 0 converts it
  // Evaluate the simulation as it ends (the last weights), then convert those.
  Splits splits = open_splits(cfg);
  data::Loader loader = make_eval_loader(splits.test, cfg, cfg.j["train"]["eval_batch_size"]);
  // The last epoch's evaluation is that one when this run made it (not when resuming a finished run).
  EvalResult sim = r.last_eval ? std::move(*r.last_eval) : evaluate(*model, loader, cfg.j["model"]["num_classes"]);
  std::printf("fake-quant simulation: top-1 %.2f%%\n", sim.top1());
  convert_and_check(*model, cfg, splits.classes, input_shape(loader), sim);
}

void run_ptq(const QuantArgs& a) {
  Config cfg = load_quant_config(a, "ptq");
  std::string mode = a.mode.empty() ? cfg.j["quant"]["mode"].get<std::string>() : a.mode;
  QF_CHECK(mode == "static" || mode == "dynamic", "--mode must be static or dynamic, got " + mode);
  const int classes = cfg.j["model"]["num_classes"];
  Splits splits = open_splits(cfg);
  data::Loader test_loader = make_eval_loader(splits.test, cfg, cfg.j["train"]["eval_batch_size"]);
  auto fmodel = build_float_model(cfg);
  EvalResult fl = evaluate(*fmodel, test_loader, classes);
  std::printf("float model %s: top-1 %.2f%%\n", cfg.j["model"]["init_from"].get<std::string>().c_str(), fl.top1());
  if (mode == "dynamic") {
    auto qc = cfg.j["quant"]["skip"].get<std::vector<std::string>>();
    int n = quant::quantize_dynamic(*fmodel, {qc.begin(), qc.end()});
    EvalResult dy = evaluate(*fmodel, test_loader, classes);
    std::printf("dynamic quantization (%d Linear layer%s int8): top-1 %.2f%% (float %.2f%%, %+.2f points)\n", n,
                n == 1 ? "" : "s", dy.top1(), fl.top1(), dy.top1() - fl.top1());
    return;
  }
  auto model = build_prepared_model(cfg, "ptq", true);
  // Calibration: training images without augmentation, shuffled from the seed.
  data::LoaderOptions lo;
  lo.batch_size = cfg.j["train"]["batch_size"];
  lo.shuffle = true;
  lo.seed = cfg.j["train"]["seed"];
  lo.workers = cfg.j["data"]["workers"];
  data::Loader calib(splits.train, transform_config(cfg), lo);
  calib.start_epoch(0);
  data::Batch b;
  double t0 = now_seconds();
  int n = quant::calibrate(
      *model,
      [&](Tensor& x) {
        if (!calib.next(b)) return false;
        x = Tensor::from({b.n, b.c, b.h, b.w}, b.images);
        return true;
      },
      cfg.j["quant"]["calibration_batches"]);
  QF_CHECK(n > 0, cfg.where("data.train") + ": no training images to calibrate on");
  std::printf("calibrated on %d batches (%d images) in %.1f s\n", n, n * lo.batch_size, now_seconds() - t0);
  EvalResult sim = evaluate(*model, test_loader, classes);
  std::printf("static PTQ simulation: top-1 %.2f%% (float %.2f%%, %+.2f points)\n", sim.top1(), fl.top1(),
              sim.top1() - fl.top1());
  CheckpointInfo info;
  info.kind = "ptq";
  info.classes = splits.classes;
  info.input = input_shape(test_loader);
  info.test_acc = info.best_acc = sim.top1();
  save_checkpoint(out_file(cfg, "ptq.safetensors"), *model, nullptr, cfg, info);
  convert_and_check(*model, cfg, splits.classes, info.input, sim);
}

struct ConvertArgs {
  std::string model, out;
};

void run_convert(const ConvertArgs& a) {
  LoadedCheckpoint ck = load_checkpoint(a.model);
  QF_CHECK(ck.is_qforge && (ck.info.kind == "qat" || ck.info.kind == "ptq"),
           a.model + ": convert needs a prepared checkpoint (from qforge qat or ptq), this is " +
               (ck.is_qforge ? "a " + ck.info.kind + " checkpoint" : std::string("not a qforge checkpoint")));
  LoadedModel lm = load_model_file(a.model, nullptr);
  quant::Int8Graph g = quant::convert(*lm.module, lm.input);
  g.classes = lm.classes;
  g.config = lm.config.j;
  quant::save_int8_model(a.out, g);
  std::printf("wrote %s: %zu nodes, %.2f MB (from %s, %.2f MB)\n", a.out.c_str(), g.nodes.size(),
              std::filesystem::file_size(a.out) / 1e6, a.model.c_str(), std::filesystem::file_size(a.model) / 1e6);
}

}  // namespace

void add_quant_commands(CLI::App& app) {
  auto q = std::make_shared<QuantArgs>();
  auto* c = app.add_subcommand("qat", "Quantization-aware fine-tuning from a float checkpoint (model.init_from)");
  add_config_options(c, q->config, q->sets);
  c->add_flag("--resume", q->resume, "Continue from output.dir/last.safetensors");
  c->add_option("--max-steps", q->max_steps, "Stop after this many steps, saving last.safetensors");
  c->callback([q] { run_qat(*q); });

  auto p = std::make_shared<QuantArgs>();
  auto* pc = app.add_subcommand("ptq", "Post-training quantization of a float checkpoint (model.init_from)");
  add_config_options(pc, p->config, p->sets);
  pc->add_option("--mode", p->mode, "static (calibrated int8 graph) or dynamic (int8 Linear layers)");
  pc->callback([p] { run_ptq(*p); });

  auto v = std::make_shared<ConvertArgs>();
  auto* vc = app.add_subcommand("convert", "Convert a prepared (QAT or PTQ) checkpoint to an int8 model file");
  vc->add_option("--model", v->model, "Prepared checkpoint (.safetensors)")->required()->check(CLI::ExistingFile);
  vc->add_option("--out", v->out, "Output int8 model (.qfm)")->required();
  vc->callback([v] { run_convert(*v); });
}

}  // namespace qforge::apps
