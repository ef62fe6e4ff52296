// Random inputs for the op tests. The anonymous namespace gives each test file
// its own generator, so a file's sequence does not depend on which other
// files' tests ran first.
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
