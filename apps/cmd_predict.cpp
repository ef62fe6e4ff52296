// qforge predict --model FILE IMAGE...: each image's top-k classes with their
// softmax probabilities, the images read with the model's own preprocessing (the
// config stored in it, or --data CONFIG for a file without one).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>

#include "apps/commands.h"
#include "apps/config.h"
#include "apps/datasets.h"
#include "apps/models.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/image_file.h"

namespace qforge::apps {
namespace {

struct PredictArgs {
  std::string model, labels, data;
  std::vector<std::string> images, sets;
  int top_k = 5, batch = 32, threads = 0;
  bool json = false;
};

// One class name per line, exactly n of them.
std::vector<std::string> read_labels(const std::string& path, int n) {
  std::ifstream f(path);
  QF_CHECK(f, path + ": cannot open labels file");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();  // trailing blank lines
  for (size_t i = 0; i < names.size(); ++i)
    QF_CHECK(!names[i].empty(), path + ":" + std::to_string(i + 1) + ": empty class name");
  QF_CHECK(static_cast<int>(names.size()) == n, path + ": " + std::to_string(names.size()) +
                                                    " class names, the model has " + std::to_string(n) + " classes");
  return names;
}

void run_predict(const PredictArgs& a) {
  set_num_threads(a.threads);
  QF_CHECK(a.top_k >= 1, "--top-k must be at least 1, got " + std::to_string(a.top_k));
  QF_CHECK(a.sets.empty() || !a.data.empty(), "--set changes the --data CONFIG; give one");
  std::optional<Config> data_cfg;
  if (!a.data.empty()) data_cfg = load_config(a.data, a.sets, false);
  LoadedModel lm = load_model_file(a.model, data_cfg ? &*data_cfg : nullptr);
  const Config& cfg = data_cfg ? *data_cfg : lm.config;
  const int n = lm.config.j["model"]["num_classes"];

  std::vector<std::string> names;
  if (!a.labels.empty()) {
    names = read_labels(a.labels, n);
  } else if (static_cast<int>(lm.classes.size()) == n) {
    names = lm.classes;
  } else {
    for (int k = 0; k < n; ++k) names.push_back(std::to_string(k));
  }

  auto ds = std::make_shared<data::ImageFiles>(a.images, folder_decode_spec(cfg, lm.input));
  data::Loader loader = make_eval_loader(ds, cfg, a.batch);
  const data::ImageSpec got = loader.output_spec();
  QF_CHECK(lm.input.size() != 3 || (data::ImageSpec{lm.input[0], lm.input[1], lm.input[2]} == got),
           a.model + ": the preprocessing gives " + data::to_string(got) + " images, the model takes " +
               std::to_string(lm.input[0]) + "x" + std::to_string(lm.input[1]) + "x" + std::to_string(lm.input[2]));

  const int k = std::min(a.top_k, n);
  nlohmann::json preds = nlohmann::json::array();
  ready_for_inference(lm, {got.channels, got.height, got.width});
  NoGradGuard ng;
  loader.start_epoch(0);
  data::Batch b;
  std::vector<double> p(n);
  std::vector<int> order(n);
  while (loader.next(b)) {
    Tensor y = (*lm.module)(Tensor::from({b.n, b.c, b.h, b.w}, b.images));
    QF_CHECK(y.dim() == 2 && y.size(0) == b.n && y.size(1) == n,
             a.model + ": the model gives " + shape_str(y.shape()) + ", expected (N," + std::to_string(n) + ")");
    for (int i = 0; i < b.n; ++i) {
      const float* row = y.data() + static_cast<int64_t>(i) * n;
      // Softmax in double, shifted by the maximum so exp never overflows.
      const double mx = *std::max_element(row, row + n);
      double sum = 0;
      for (int j = 0; j < n; ++j) sum += p[j] = std::exp(static_cast<double>(row[j]) - mx);
      for (double& v : p) v /= sum;
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int x, int z) { return p[x] > p[z]; });
      const std::string& path = ds->describe(static_cast<size_t>(b.indices[i]));
      nlohmann::json top = nlohmann::json::array();
      if (!a.json) std::printf("%s\n", path.c_str());
      for (int r = 0; r < k; ++r) {
        const int c = order[r];
        top.push_back({{"label", c}, {"class", names[c]}, {"probability", p[c]}});
        if (!a.json) std::printf("  %2d  %-24s %7.3f%%\n", r + 1, names[c].c_str(), 100.0 * p[c]);
      }
      preds.push_back({{"image", path}, {"top", top}});
    }
  }
  if (a.json) {
    nlohmann::json j = {{"model", a.model}, {"kind", lm.kind}, {"top_k", k}, {"predictions", preds}};
    std::printf("%s\n", j.dump(1).c_str());
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  auto* c = app.add_subcommand("predict", "Classify image files: the top classes of each, with probabilities");
  c->add_option("--model", a->model, "Model file: a .safetensors checkpoint (float, QAT, PTQ) or an int8 .qfm")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("images", a->images, "Image files (PNG, JPEG, BMP, ...)")->required()->check(CLI::ExistingFile);
  c->add_option("--top-k", a->top_k, "Classes shown per image")->capture_default_str();
  c->add_option("--labels", a->labels, "Class names, one per line (as many as the model has classes)")
      ->check(CLI::ExistingFile);
  c->add_option("--data", a->data, "Config whose model and data sections describe a file without a stored config")
      ->check(CLI::ExistingFile);
  c->add_option("--set", a->sets, "Override a key of the --data config");
  c->add_option("--batch", a->batch, "Images per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  c->add_flag("--json", a->json, "Print a JSON report");
  c->callback([a] { run_predict(*a); });
}

}  // namespace qforge::apps
