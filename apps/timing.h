// Wall-clock helpers for benchmarks: median of several runs after warm-up.
#pragma once
#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace qforge::apps {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median_seconds(const std::function<void()>& fn, int runs, int warmup) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    double s = now_seconds();
    fn();
    t.push_back(now_seconds() - s);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace qforge::apps
