#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qforge::optim {
namespace {

// Cosine interpolation from a (t = 0) to b (t = 1).
double cos_anneal(double a, double b, double t) { return b + (a - b) * 0.5 * (1 + std::cos(M_PI * t)); }

}  // namespace

Schedule::Schedule(const ScheduleOptions& o, int64_t steps_per_epoch, int epochs)
    : o_(o), steps_per_epoch_(std::max<int64_t>(1, steps_per_epoch)), total_(steps_per_epoch_ * std::max(1, epochs)) {
  QF_CHECK(o.kind == "constant" || o.kind == "step" || o.kind == "cosine" || o.kind == "one_cycle",
           "unknown schedule \"" + o.kind + "\" (constant, step, cosine, one_cycle)");
}

double Schedule::lr(int64_t step) const {
  if (o_.kind == "one_cycle") {
    // PyTorch's OneCycleLR phases end at step pct_start*total - 1 and total - 1.
    double init = o_.lr / o_.div_factor, fin = init / o_.final_div_factor;
    double up_end = o_.pct_start * total_ - 1, down_end = total_ - 1;
    if (step <= up_end) return cos_anneal(init, o_.lr, up_end > 0 ? step / up_end : 1.0);
    return cos_anneal(o_.lr, fin, std::min(1.0, (step - up_end) / std::max(1.0, down_end - up_end)));
  }
  double lr = o_.lr;
  if (o_.kind == "step") {
    lr *= std::pow(o_.gamma, static_cast<double>(step / steps_per_epoch_ / std::max(1, o_.step_epochs)));
  } else if (o_.kind == "cosine") {
    int64_t span = std::max<int64_t>(1, total_ - o_.warmup_steps);
    double t = std::clamp(static_cast<double>(step - o_.warmup_steps) / span, 0.0, 1.0);
    lr = cos_anneal(o_.lr, o_.min_lr, t);
  }
  if (step < o_.warmup_steps) lr *= static_cast<double>(step + 1) / o_.warmup_steps;
  return lr;
}

double Schedule::momentum(int64_t step, double configured) const {
  if (o_.kind != "one_cycle" || !o_.cycle_momentum) return configured;
  double up_end = o_.pct_start * total_ - 1, down_end = total_ - 1;
  if (step <= up_end) return cos_anneal(o_.max_momentum, o_.base_momentum, up_end > 0 ? step / up_end : 1.0);
  return cos_anneal(o_.base_momentum, o_.max_momentum,
                    std::min(1.0, (step - up_end) / std::max(1.0, down_end - up_end)));
}

}  // namespace qforge::optim
