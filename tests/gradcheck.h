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

// The same check for a raw forward / backward pair on plain buffers:
//   forward(inputs) returns out;
//   backward(grads, dout, inputs) adds dL/dinputs into grads (sized like inputs).
// The gradients start at 0.5, not 0, so a backward that writes instead of
// adding fails. Returns the largest relative error, as gradcheck_error.
using Buffers = std::vector<std::vector<float>>;
inline double raw_gradcheck_error(
    const std::function<std::vector<float>(const Buffers&)>& forward,
    const std::function<void(Buffers&, const std::vector<float>&, const Buffers&)>& backward, Buffers inputs,
    float eps = 1e-2f, uint64_t seed = 7) {
  const std::vector<float> out = forward(inputs);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> r(out.size());
  for (float& v : r) v = nd(rng);
  auto weighted = [&](const std::vector<float>& o) {
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += static_cast<double>(o[i]) * r[i];
    return s;
  };
  Buffers grads;
  for (const auto& in : inputs) grads.emplace_back(in.size(), 0.5f);
  backward(grads, r, inputs);
  double worst = 0;
  for (size_t k = 0; k < inputs.size(); ++k)
    for (size_t i = 0; i < inputs[k].size(); ++i) {
      const float orig = inputs[k][i];
      inputs[k][i] = orig + eps;
      const double lp = weighted(forward(inputs));
      inputs[k][i] = orig - eps;
      const double lm = weighted(forward(inputs));
      inputs[k][i] = orig;
      const double numeric = (lp - lm) / (2.0 * eps);
      const double analytic = static_cast<double>(grads[k][i]) - 0.5;
      worst = std::max(worst, std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric)));
    }
  return worst;
}

}  // namespace qforge::testing
