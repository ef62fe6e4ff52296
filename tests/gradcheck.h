// The shared numerical-gradient check: every op test uses it.
//
// For f(inputs) -> out, the scalar L = sum(out * R) with a fixed random R is
// differentiated twice: by backward(), and by central differences on each
// input element in double precision around the float evaluation.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/autograd.h"
#include "core/ops/elementwise.h"
#include "core/tensor.h"

namespace qforge::testing {

inline double weighted_sum(const Tensor& out, const Tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < out.numel(); ++i) s += static_cast<double>(out.data()[i]) * r.data()[i];
  return s;
}

// Returns the largest |analytic - numeric| / max(1, |numeric|) over all input elements.
inline double gradcheck_error(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                              float eps = 1e-2f, uint64_t seed = 7) {
  for (auto& t : inputs) {
    t.zero_grad();
    t.requires_grad_(true);
  }
  Tensor out = f(inputs);
  std::mt19937_64 rng(seed);
  Tensor r = Tensor::randn(out.shape(), rng);
  sum(mul(out, r)).backward();
  double worst = 0;
  for (auto& t : inputs) {
    Tensor g = t.grad();
    REQUIRE(g.defined());
    std::vector<float> analytic(g.data(), g.data() + g.numel());
    NoGradGuard ng;
    for (int64_t i = 0; i < t.numel(); ++i) {
      float orig = t.data()[i];
      t.data()[i] = orig + eps;
      double lp = weighted_sum(f(inputs), r);
      t.data()[i] = orig - eps;
      double lm = weighted_sum(f(inputs), r);
      t.data()[i] = orig;
      double numeric = (lp - lm) / (2.0 * eps);
      double err = std::abs(analytic[i] - numeric) / std::max(1.0, std::abs(numeric));
      worst = std::max(worst, err);
    }
  }
  return worst;
}

}  // namespace qforge::testing
