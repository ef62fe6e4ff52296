// Tests of linear (core/ops/linear.h).
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "core/error.h"
#include "core/ops/linear.h"
#include "gradcheck.h"
#include "op_test_util.h"

using namespace qforge;
using qforge::testing::Buffers;
using qforge::testing::gradcheck_error;
using qforge::testing::random_values;
using qforge::testing::raw_gradcheck_error;
using qforge::testing::rng;

TEST_CASE("linear: values and gradients") {
  Tensor x = Tensor::randn({3, 5}, rng()), w = Tensor::randn({4, 5}, rng()), b = Tensor::randn({4}, rng());
  Tensor y = linear(x, w, b);
  for (int i = 0; i < 3; ++i)
    for (int o = 0; o < 4; ++o) {
      double acc = b.data()[o];
      for (int k = 0; k < 5; ++k) acc += x.data()[i * 5 + k] * w.data()[o * 5 + k];
      CHECK(y.data()[i * 4 + o] == doctest::Approx(acc).epsilon(1e-5));
    }
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); }, {x, w, b}) < 1e-3);
  CHECK_THROWS_WITH_AS(linear(x, Tensor::zeros({4, 6}), Tensor()), doctest::Contains("(3,5)"), Error);
}

TEST_CASE("linear raw pair: backward adds the gradients of forward") {
  const int n = 3, in = 4, outf = 5;
  Buffers t{random_values(n * in), random_values(outf * in), random_values(outf)};
  auto forward = [&](const Buffers& v) {
    std::vector<float> out(n * outf);
    linear_forward(out.data(), v[0].data(), v[1].data(), v[2].data(), n, in, outf);
    return out;
  };
  auto backward = [&](Buffers& g, const std::vector<float>& dout, const Buffers& v) {
    linear_backward(g[0].data(), g[1].data(), g[2].data(), dout.data(), v[0].data(), v[1].data(), n, in, outf);
  };
  CHECK(raw_gradcheck_error(forward, backward, t) < 1e-3);
}
