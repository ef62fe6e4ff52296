// The training loop shared by `train` and `qat`: epochs of SGD over a loader,
// progress, test accuracy after each epoch, metrics as JSON lines, `last` and
// `best` checkpoints written atomically, exact resume, and a clear stop on a
// NaN or infinite loss. Also evaluation (top-1, per class, confusion matrix).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/checkpoint.h"
#include "apps/config.h"
#include "data/loader.h"
#include "nn/module.h"

namespace qforge::apps {

struct EvalResult {
  int64_t n = 0, correct = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  std::vector<int32_t> predictions;             // in dataset order
  double seconds = 0;
  double top1() const { return n ? 100.0 * correct / n : 0; }
  double class_acc(size_t k) const;
};

// Index of the largest of k logits (the first on ties).
int argmax(const float* row, int k);
// Percentage of images on which two evaluations of the same data predict the same class.
double top1_agreement(const EvalResult& a, const EvalResult& b);

// Runs the model in eval mode without recording gradients; restores the mode after.
EvalResult evaluate(nn::Module& model, data::Loader& loader, int num_classes, bool progress = false);
// The table for a terminal, and the JSON report.
void print_eval(const EvalResult& r, const std::vector<std::string>& classes);
nlohmann::json eval_json(const EvalResult& r, const std::vector<std::string>& classes);

struct FitOptions {
  std::string kind = "float";                     // written into checkpoints
  std::vector<std::string> classes;               // the model's class names
  std::function<void(int epoch)> on_epoch_start;  // QAT: freeze BN or observers
  bool resume = false;                            // continue from output.dir/last.safetensors
  int64_t max_steps = 0;                          // stop after this many steps in this run, saving `last`
};

struct FitResult {
  double final_acc = -1, best_acc = -1;
  bool finished = false;  // false when max_steps stopped it early
  // The last epoch's test-set evaluation, when this run made it with every image's prediction
  // (not under mpirun): the model as it ends, so callers need not evaluate it again.
  std::optional<EvalResult> last_eval;
};

FitResult fit(const Config& cfg, nn::Module& model, const FitOptions& o);

// The output directory's files.
std::string last_path(const Config& cfg);
std::string best_path(const Config& cfg);

}  // namespace qforge::apps
