// qforge train CONFIG: float training from a JSON config.
#include <cstdio>

#include "apps/commands.h"
#include "apps/config.h"
#include "apps/distributed.h"
#include "apps/models.h"
#include "apps/trainer.h"
#include "core/atomic_file.h"
#include "core/blas.h"
#include "core/threads.h"
#include "nn/module.h"

namespace qforge::apps {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> sets;
  bool resume = false;
  int64_t max_steps = 0;
};

void write_resolved_config(const Config& cfg) {
  if (!is_rank0()) return;  // a data-parallel run: rank 0 writes the files
  std::string dir = cfg.j["output"]["dir"];
  make_directories(dir);
  write_text_atomic(dir + "/config.json", cfg.j.dump(2) + "\n");
}

void run_train(const TrainArgs& a) {
  Config cfg = load_config(a.config, a.sets);
  set_num_threads(cfg.j["train"]["threads"]);
  auto model = build_float_model(cfg);
  std::printf("qforge train: %s, %lld parameters, %d threads, BLAS %s, output %s\n", a.config.c_str(),
              static_cast<long long>(nn::count_parameters(*model)), num_threads(), blas_core_name().c_str(),
              cfg.j["output"]["dir"].get<std::string>().c_str());
  write_resolved_config(cfg);
  FitOptions fo;
  fo.resume = a.resume;
  fo.max_steps = a.max_steps;
  FitResult r = fit(cfg, *model, fo);
  if (r.finished)
    std::printf("done: test accuracy %.2f%% (best %.2f%%); checkpoints in %s\n", r.final_acc, r.best_acc,
                cfg.j["output"]["dir"].get<std::string>().c_str());
}

}  // namespace

void add_config_options(CLI::App* c, std::string& config, std::vector<std::string>& sets) {
  c->add_option("config", config, "JSON config file")->required()->check(CLI::ExistingFile);
  c->add_option("--set", sets, "Override a config key: --set train.epochs=3 (repeatable)");
}

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* c = app.add_subcommand("train", "Train a float model from a JSON config");
  add_config_options(c, a->config, a->sets);
  c->add_flag("--resume", a->resume, "Continue from output.dir/last.safetensors");
  c->add_option("--max-steps", a->max_steps,
                "Stop after this many steps, saving last.safetensors (as an interruption)");
  c->callback([a] { run_train(*a); });
}

}  // namespace qforge::apps
