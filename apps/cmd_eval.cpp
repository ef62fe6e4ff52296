// qforge eval --model FILE --data DIR|CONFIG: top-1, per-class accuracy, confusion matrix.
// A directory is read with the model's own preprocessing (its stored config) and its
// folders matched to the model's classes by name (--class-map for the rest).
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "apps/config.h"
#include "apps/datasets.h"
#include "apps/models.h"
#include "apps/trainer.h"
#include "core/error.h"
#include "core/threads.h"

namespace qforge::apps {
namespace {

struct EvalArgs {
  std::string model, data, class_map;
  std::vector<std::string> sets;
  int batch = 256, threads = 0;
  bool json = false;
};

void run_eval(const EvalArgs& a) {
  set_num_threads(a.threads);
  const bool dir = std::filesystem::is_directory(a.data);
  std::optional<Config> data_cfg;
  if (!dir) data_cfg = load_data_config(a.data, a.sets);
  LoadedModel lm = load_model_file(a.model, data_cfg ? &*data_cfg : nullptr);
  const int classes = lm.config.j["model"]["num_classes"];
  std::shared_ptr<const data::Dataset> ds;
  // The model's own preprocessing for a directory; a data config brings its own.
  const Config& tcfg = data_cfg ? *data_cfg : lm.config;
  if (dir) {
    ds = open_folder(a.data, folder_decode_spec(lm.config, lm.input));
  } else {
    ds = open_split(*data_cfg, "test");
  }
  if (!lm.classes.empty()) {
    ds = match_model_classes(lm.classes, ds, a.data, a.class_map);
  } else {
    QF_CHECK(a.class_map.empty(), a.model + ": the model has no class names to map folders to (--class-map)");
  }
  QF_CHECK(static_cast<int>(ds->classes().size()) <= classes,
           a.data + ": " + std::to_string(ds->classes().size()) + " classes, the model has " + std::to_string(classes));
  std::vector<std::string> names = lm.classes.empty() ? ds->classes() : lm.classes;
  data::Loader loader = make_eval_loader(ds, tcfg, a.batch);
  const data::ImageSpec got = loader.output_spec();
  QF_CHECK(lm.input.size() != 3 || (data::ImageSpec{lm.input[0], lm.input[1], lm.input[2]} == got),
           a.data + ": the preprocessing gives " + data::to_string(got) + " images, the model " + a.model + " takes " +
               std::to_string(lm.input[0]) + "x" + std::to_string(lm.input[1]) + "x" + std::to_string(lm.input[2]));
  ready_for_inference(lm, {got.channels, got.height, got.width});
  EvalResult r = evaluate(*lm.module, loader, classes, !a.json);
  if (a.json) {
    nlohmann::json j = eval_json(r, names);
    j["model"] = a.model;
    j["data"] = a.data;
    std::printf("%s\n", j.dump(1).c_str());
  } else {
    std::printf("model %s (%s) on %s: %zu images\n", a.model.c_str(), lm.kind.c_str(), a.data.c_str(), ds->size());
    print_eval(r, names);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* c = app.add_subcommand("eval", "Evaluate a model on a dataset directory or a config's test set");
  c->add_option("--model", a->model, "Model file (.safetensors checkpoint or .qfm)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--data", a->data, "Dataset directory (root/<class>/<image>) or JSON config")
      ->required()
      ->check(CLI::ExistingPath);
  c->add_option("--class-map", a->class_map,
                "Folder-to-class names: a JSON object {\"folder\": \"class\"} or lines folder=class")
      ->check(CLI::ExistingFile);
  c->add_option("--set", a->sets, "Override a key of the data config");
  c->add_option("--batch", a->batch, "Batch size")->capture_default_str();
  c->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  c->add_flag("--json", a->json, "Print a JSON report");
  c->callback([a] { run_eval(*a); });
}

}  // namespace qforge::apps
