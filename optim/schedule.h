// Learning-rate schedules, evaluated per step (iteration) from the step index,
// so a resumed run picks up exactly where it stopped.
//
//   constant | step (every step_epochs, times gamma) | cosine (to min_lr)
//   one_cycle: PyTorch's OneCycleLR (cosine up for pct_start of the run from
//     max_lr/div_factor, then down to max_lr/(div_factor*final_div_factor));
//     it also cycles momentum between max_momentum and base_momentum.
//   warmup_steps > 0: linear warm-up from 0 for the first steps (not one_cycle).
#pragma once
#include <cstdint>
#include <string>

namespace qforge::optim {

struct ScheduleOptions {
  std::string kind = "constant";
  double lr = 0.1;  // base lr; the peak for one_cycle
  int64_t warmup_steps = 0;
  int step_epochs = 30;
  double gamma = 0.1;
  double min_lr = 0.0;
  double pct_start = 0.3, div_factor = 25.0, final_div_factor = 1e4;
  bool cycle_momentum = true;
  double base_momentum = 0.85, max_momentum = 0.95;
};

class Schedule {
 public:
  Schedule(const ScheduleOptions& o, int64_t steps_per_epoch, int epochs);
  double lr(int64_t step) const;
  // The momentum to use at this step; `configured` unless one_cycle cycles it.
  double momentum(int64_t step, double configured) const;

 private:
  ScheduleOptions o_;
  int64_t steps_per_epoch_, total_;
};

}  // namespace qforge::optim
