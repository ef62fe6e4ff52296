#include <doctest/doctest.h>

#include <cmath>

#include "core/error.h"
#include "optim/schedule.h"

using namespace qforge::optim;

TEST_CASE("schedules") {
  ScheduleOptions o;
  o.lr = 0.1;
  CHECK(Schedule(o, 10, 3).lr(25) == doctest::Approx(0.1));

  o.kind = "step";
  o.step_epochs = 1;
  o.gamma = 0.5;
  CHECK(Schedule(o, 10, 3).lr(9) == doctest::Approx(0.1));
  CHECK(Schedule(o, 10, 3).lr(10) == doctest::Approx(0.05));
  CHECK(Schedule(o, 10, 3).lr(29) == doctest::Approx(0.025));

  o.kind = "cosine";
  o.min_lr = 0.0;
  CHECK(Schedule(o, 10, 2).lr(0) == doctest::Approx(0.1));
  CHECK(Schedule(o, 10, 2).lr(10) == doctest::Approx(0.05));
  o.warmup_steps = 4;
  CHECK(Schedule(o, 10, 2).lr(0) == doctest::Approx(0.025));
  CHECK(Schedule(o, 10, 2).lr(3) == doctest::Approx(0.1));

  // OneCycleLR as PyTorch: starts at max/25, peaks at step pct*total - 1, ends at max/25/1e4.
  ScheduleOptions c;
  c.kind = "one_cycle";
  c.lr = 0.1;
  Schedule s(c, 100, 1);
  CHECK(s.lr(0) == doctest::Approx(0.004));
  CHECK(s.lr(29) == doctest::Approx(0.1));
  CHECK(s.lr(99) == doctest::Approx(0.1 / 25 / 1e4));
  CHECK(s.lr(64) < 0.1);
  CHECK(s.momentum(0, 0.9) == doctest::Approx(0.95));
  CHECK(s.momentum(29, 0.9) == doctest::Approx(0.85));
  CHECK(s.momentum(99, 0.9) == doctest::Approx(0.95));

  ScheduleOptions bad;
  bad.kind = "linear_decay";
  CHECK_THROWS_WITH_AS(Schedule(bad, 1, 1), doctest::Contains("linear_decay"), qforge::Error);
}
