// Tests of Elementwise ops (core/ops/elementwise.h).
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <limits>
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

TEST_CASE("relu, relu6, add_relu and their masks: the scalar definitions bit for bit, specials included") {
  // Several mask words and a partial one, with NaN, infinities, signed zeros and the bounds themselves.
  const int64_t n = 64 * 17 + 37;
  std::vector<float> x(n), x2(n), g(n), acc(n);
  std::mt19937_64 r(7);
  std::uniform_real_distribution<float> u(-8.f, 8.f);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            -0.f,
                            0.f,
                            6.f,
                            -6.f,
                            1e-40f,
                            -1e-40f};
  for (int64_t i = 0; i < n; ++i) {
    x[i] = i % 11 == 0 ? specials[(i / 11) % 9] : u(r);
    x2[i] = i % 13 == 0 ? specials[(i / 13) % 9] : u(r);
    g[i] = i % 29 == 0 ? -0.f : u(r);
    acc[i] = i % 31 == 0 ? -0.f : u(r);
  }
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  const int64_t words = (n + 63) / 64;
  for (int kind = 0; kind < 3; ++kind) {  // relu, relu6, add_relu
    CAPTURE(kind);
    const float hi = kind == 1 ? 6.f : std::numeric_limits<float>::infinity();
    std::vector<float> want(n), got(n), want_dx(n), want_acc(n);
    std::vector<uint64_t> want_mask(words, 0), mask(words, ~uint64_t{0});
    for (int64_t i = 0; i < n; ++i) {
      float v = kind == 2 ? x[i] + x2[i] : x[i];
      v = v > 0.f ? v : 0.f;
      if (kind != 2) v = v < hi ? v : hi;
      want[i] = v;
      const bool pass = v > 0.f && (kind == 2 || v < hi);
      want_mask[i / 64] |= static_cast<uint64_t>(pass) << (i % 64);
      want_dx[i] = pass ? g[i] : 0.f;
      want_acc[i] = acc[i] + (pass ? g[i] : 0.f);
    }
    if (kind == 2)
      add_relu_forward(got.data(), mask.data(), x.data(), x2.data(), n);
    else
      clamp_relu_forward(got.data(), mask.data(), x.data(), hi, n);
    CHECK(same_bits(got, want));
    CHECK(mask == want_mask);
    std::vector<float> dx(n, 1.f), dacc = acc;
    if (kind == 2) {
      add_relu_backward(dx.data(), g.data(), mask.data(), n);
    } else {
      clamp_relu_backward(dx.data(), true, g.data(), mask.data(), n);
      clamp_relu_backward(dacc.data(), false, g.data(), mask.data(), n);
      CHECK(same_bits(dacc, want_acc));
    }
    CHECK(same_bits(dx, want_dx));
    std::vector<float> inplace = g;  // the gradient written over itself
    if (kind == 2)
      add_relu_backward(inplace.data(), inplace.data(), mask.data(), n);
    else
      clamp_relu_backward(inplace.data(), true, inplace.data(), mask.data(), n);
    CHECK(same_bits(inplace, want_dx));
  }
}
