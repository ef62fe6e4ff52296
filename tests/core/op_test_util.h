// Random inputs for the op tests. The anonymous namespace gives each translation
// unit its own generator; in a unity build (QFORGE_UNITY) that is a batch of test
// files, so a test's draws depend on which tests of its batch ran first: every
// test must hold for any draw (tolerances are stated for the values' magnitudes).
#pragma once
#include <random>
#include <vector>

namespace qforge::testing {
namespace {

std::mt19937_64& rng() {
  static std::mt19937_64 r(1234);
  return r;
}

[[maybe_unused]] std::vector<float> random_values(size_t n, float stddev = 1.f) {
  std::vector<float> v(n);
  std::normal_distribution<float> d(0.f, stddev);
  for (float& x : v) x = d(rng());
  return v;
}

}  // namespace
}  // namespace qforge::testing
