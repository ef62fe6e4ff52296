#include <doctest/doctest.h>

#include <vector>

#include "core/error.h"
#include "core/ops/dropout.h"
#include "gradcheck.h"

using namespace qforge;
using qforge::testing::gradcheck_error;

TEST_CASE("dropout: gradient with a fixed mask") {
  std::mt19937_64 rng(3);
  Tensor x = Tensor::randn({4, 7}, rng);
  for (float p : {0.f, 0.3f, 0.5f, 1.f}) {
    // The generator is re-seeded on every call, so each evaluation draws the same mask.
    auto f = [p](const std::vector<Tensor>& t) {
      std::mt19937_64 r(11);
      return dropout(t[0], p, r);
    };
    CHECK(gradcheck_error(f, {x}) < 1e-3);
  }
}

TEST_CASE("dropout: raw forward and backward") {
  const int64_t n = 20000;
  const float p = 0.25f;
  std::vector<float> inp(n), out(n), dout(n), dinp(n, 1.f);
  for (int64_t i = 0; i < n; ++i) inp[i] = dout[i] = 0.5f + static_cast<float>(i % 7);
  const float scale = 1.f / (1.f - p);  // a multiply by 1 / (1 - p), as PyTorch's kernel does
  std::vector<uint8_t> mask(n);
  std::mt19937_64 rng(5);
  dropout_forward(out.data(), mask.data(), inp.data(), n, p, rng);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    REQUIRE(mask[i] <= 1);
    kept += mask[i];
    CHECK(out[i] == (mask[i] ? inp[i] * scale : 0.f));
  }
  // 15000 expected; the standard deviation of the count is about 61.
  CHECK(kept > 14700);
  CHECK(kept < 15300);
  dropout_backward(dinp.data(), dout.data(), mask.data(), n, p);  // adds into dinp
  for (int64_t i = 0; i < n; ++i) REQUIRE(dinp[i] == 1.f + (mask[i] ? dout[i] * scale : 0.f));

  // The same seed gives the same mask; another seed a different one.
  std::vector<uint8_t> again(n), other(n);
  std::mt19937_64 r1(5), r2(6);
  dropout_forward(out.data(), again.data(), inp.data(), n, p, r1);
  dropout_forward(out.data(), other.data(), inp.data(), n, p, r2);
  CHECK(again == mask);
  CHECK(other != mask);
}

TEST_CASE("dropout: p = 0 is the identity, p = 1 drops everything, p outside [0, 1] throws") {
  std::mt19937_64 rng(9);
  Tensor x = Tensor::randn({3, 5}, rng);
  Tensor y0 = dropout(x, 0.f, rng), y1 = dropout(x, 1.f, rng);
  for (int64_t i = 0; i < x.numel(); ++i) {
    CHECK(y0.data()[i] == x.data()[i]);
    CHECK(y1.data()[i] == 0.f);
  }
  CHECK_THROWS_WITH_AS(dropout(x, 1.5f, rng), doctest::Contains("dropout"), Error);
  CHECK_THROWS_WITH_AS(dropout(x, -0.1f, rng), doctest::Contains("dropout"), Error);
}
