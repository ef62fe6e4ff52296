// Tests of log_softmax and cross_entropy (core/ops/loss.h).
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/ops/loss.h"
#include "gradcheck.h"
#include "op_test_util.h"

using namespace qforge;
using qforge::testing::Buffers;
using qforge::testing::gradcheck_error;
using qforge::testing::random_values;
using qforge::testing::raw_gradcheck_error;
using qforge::testing::rng;

TEST_CASE("log_softmax and cross_entropy: values and gradients") {
  Tensor x = Tensor::randn({4, 6}, rng(), 3.f);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return log_softmax(t[0]); }, {x}) < 1e-3);
  std::vector<int32_t> labels{0, 5, 2, 2};
  for (float smooth : {0.f, 0.1f}) {
    CHECK(gradcheck_error([&](const std::vector<Tensor>& t) { return cross_entropy(t[0], labels, smooth); }, {x}) <
          1e-3);
  }
  // Uniform logits: the loss is log K whatever the smoothing.
  CHECK(cross_entropy(Tensor::zeros({2, 10}), {1, 3}).item() == doctest::Approx(std::log(10.0)));
  CHECK(cross_entropy(Tensor::zeros({2, 10}), {1, 3}, 0.2f).item() == doctest::Approx(std::log(10.0)));
  // Smoothing: -(0.9 + 0.1/2) log p_y - (0.1/2) log p_other
  Tensor two = Tensor::from({1, 2}, {2.f, 0.f});
  double lp0 = 2 - std::log(std::exp(2.0) + 1), lp1 = -std::log(std::exp(2.0) + 1);
  CHECK(cross_entropy(two, {0}, 0.1f).item() == doctest::Approx(-(0.95 * lp0 + 0.05 * lp1)));
  CHECK_THROWS_WITH_AS(cross_entropy(x, {0, 1, 2, 6}), doctest::Contains("label 6"), Error);
}

TEST_CASE("loss raw pairs: backward adds the gradients of forward") {
  const int64_t n = 3, k = 5;
  const std::vector<int32_t> labels{4, 0, 2};
  auto ce_fwd = [&](const Buffers& t) {
    std::vector<float> logp(n * k);
    return std::vector<float>{cross_entropy_forward(logp.data(), t[0].data(), labels.data(), 0.1f, n, k)};
  };
  auto ce_bwd = [&](Buffers& g, const std::vector<float>& dout, const Buffers& t) {
    std::vector<float> logp(n * k);
    cross_entropy_forward(logp.data(), t[0].data(), labels.data(), 0.1f, n, k);
    cross_entropy_backward(g[0].data(), dout[0], logp.data(), labels.data(), 0.1f, n, k);
  };
  CHECK(raw_gradcheck_error(ce_fwd, ce_bwd, {random_values(n * k, 2.f)}) < 1e-3);
  auto ls_fwd = [&](const Buffers& t) {
    std::vector<float> out(n * k);
    log_softmax_forward(out.data(), t[0].data(), n, k);
    return out;
  };
  auto ls_bwd = [&](Buffers& g, const std::vector<float>& dout, const Buffers& t) {
    const std::vector<float> out = ls_fwd(t);
    log_softmax_backward(g[0].data(), dout.data(), out.data(), n, k);
  };
  CHECK(raw_gradcheck_error(ls_fwd, ls_bwd, {random_values(n * k, 2.f)}) < 1e-3);
}
