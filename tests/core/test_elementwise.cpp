// Tests of Elementwise ops (core/ops/elementwise.h).
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/ops/elementwise.h"
#include "gradcheck.h"
#include "op_test_util.h"

using namespace qforge;
using qforge::testing::Buffers;
using qforge::testing::gradcheck_error;
using qforge::testing::raw_gradcheck_error;
using qforge::testing::rng;

TEST_CASE("elementwise ops: gradients") {
  // Values kept away from the kinks at 0 and 6, where the derivative jumps.
  Tensor a = Tensor::uniform({4, 5}, rng(), -8.f, 8.f), b = Tensor::randn({4, 5}, rng());
  for (int64_t i = 0; i < a.numel(); ++i)
    for (float kink : {0.f, 6.f})
      if (std::abs(a.data()[i] - kink) < 0.05f) a.data()[i] = kink + 0.1f;
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return add(t[0], t[1]); }, {a, b}) < 1e-3);
  // add_relu away from its kink (a + b near 0).
  Tensor c = Tensor::randn({4, 5}, rng());
  for (int64_t i = 0; i < c.numel(); ++i)
    if (std::abs(a.data()[i] + c.data()[i]) < 0.05f) c.data()[i] += 0.2f;
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return add_relu(t[0], t[1]); }, {a, c}, 1e-3f) < 1e-3);
  // A tensor added to itself, and a gradient handed on by buffer then accumulated into: d/da sum(relu(a + a) * 3 + a).
  Tensor s = Tensor::from({3}, {1.f, -2.f, 0.5f}).requires_grad_();
  sum(add(scale(add_relu(s, s), 3.f), s)).backward();
  CHECK(s.grad().data()[0] == 7.f);
  CHECK(s.grad().data()[1] == 1.f);
  CHECK(s.grad().data()[2] == 7.f);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return mul(t[0], t[1]); }, {a, b}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return relu(t[0]); }, {a}, 1e-3f) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return relu6(t[0]); }, {a}, 1e-3f) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return scale(t[0], -2.5f); }, {a}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return mean(t[0]); }, {a}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return t[0].reshape({5, -1}); }, {a}) < 1e-3);
  Tensor y = relu6(Tensor::from({3}, {-1.f, 3.f, 9.f}));
  CHECK(y.data()[0] == 0.f);
  CHECK(y.data()[1] == 3.f);
  CHECK(y.data()[2] == 6.f);
  CHECK_THROWS_WITH_AS(add(a, Tensor::zeros({5, 4})), doctest::Contains("(4,5) and (5,4)"), Error);
}

TEST_CASE("elementwise raw pairs: backward adds the gradients of forward") {
  // Values away from relu6's kinks at 0 and 6, so finite differences do not cross them.
  std::vector<float> x{-2.f, -0.5f, 0.5f, 3.f, 5.5f, 6.5f, 9.f, 1.f};
  for (float hi : {6.f, 1e30f}) {
    CAPTURE(hi);
    const int64_t n = static_cast<int64_t>(x.size());
    auto fwd = [&](const Buffers& t) {
      std::vector<float> out(n);
      clamp_relu_forward(out.data(), nullptr, t[0].data(), hi, n);
      return out;
    };
    auto bwd = [&](Buffers& g, const std::vector<float>& dout, const Buffers& t) {
      std::vector<float> out(n);
      uint64_t mask[1];
      clamp_relu_forward(out.data(), mask, t[0].data(), hi, n);
      clamp_relu_backward(g[0].data(), false, dout.data(), mask, n);
    };
    CHECK(raw_gradcheck_error(fwd, bwd, {x}, 1e-2f) < 1e-3);
  }
  std::vector<float> a{1.f, -2.f, 0.5f}, b{3.f, 0.25f, -1.f};
  auto mul_fwd = [](const Buffers& t) {
    std::vector<float> out(3);
    mul_forward(out.data(), t[0].data(), t[1].data(), 3);
    return out;
  };
  auto mul_bwd = [](Buffers& g, const std::vector<float>& dout, const Buffers& t) {
    mul_backward(g[0].data(), g[1].data(), dout.data(), t[0].data(), t[1].data(), 3);
  };
  CHECK(raw_gradcheck_error(mul_fwd, mul_bwd, {a, b}) < 1e-3);
}
