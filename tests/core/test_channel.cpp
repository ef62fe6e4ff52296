// Tests of Per-channel ops (core/ops/channel.h).
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "core/error.h"
#include "core/ops/channel.h"
#include "gradcheck.h"
#include "op_test_util.h"

using namespace qforge;
using qforge::testing::Buffers;
using qforge::testing::gradcheck_error;
using qforge::testing::random_values;
using qforge::testing::raw_gradcheck_error;
using qforge::testing::rng;

TEST_CASE("channel ops: values and gradients") {
  Tensor x = Tensor::randn({2, 3, 2, 2}, rng()), s = Tensor::uniform({3}, rng(), 0.5f, 2.f);
  Tensor w = Tensor::randn({3, 2, 1, 1}, rng());
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return scale_channels(t[0], t[1], 1); }, {x, s}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return scale_channels(t[0], t[1], 0); }, {w, s}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return add_channels(t[0], t[1], 1); }, {x, s}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return reciprocal(t[0]); }, {s}, 1e-3f) < 1e-3);
  Tensor y = scale_channels(x, s, 1);
  CHECK(y.data()[4 * 2 + 1] == x.data()[4 * 2 + 1] * s.data()[2]);
  CHECK(add_channels(x, s, 1).data()[5] == x.data()[5] + s.data()[1]);
  CHECK_THROWS_WITH_AS(scale_channels(x, Tensor::zeros({4}), 1), doctest::Contains("(2,3,2,2)"), Error);
}

TEST_CASE("channel raw pairs: backward adds the gradients of forward") {
  const ChannelView cv{2, 3, 4};
  Buffers t{random_values(24), {0.5f, 1.5f, -2.f}};
  auto sc_fwd = [&](const Buffers& v) {
    std::vector<float> out(24);
    scale_channels_forward(out.data(), v[0].data(), v[1].data(), cv);
    return out;
  };
  auto sc_bwd = [&](Buffers& g, const std::vector<float>& dout, const Buffers& v) {
    scale_channels_backward(g[0].data(), g[1].data(), dout.data(), v[0].data(), v[1].data(), cv);
  };
  CHECK(raw_gradcheck_error(sc_fwd, sc_bwd, t) < 1e-3);
  auto ac_fwd = [&](const Buffers& v) {
    std::vector<float> out(24);
    add_channels_forward(out.data(), v[0].data(), v[1].data(), cv);
    return out;
  };
  auto ac_bwd = [&](Buffers& g, const std::vector<float>& dout, const Buffers&) {
    add_channels_backward(g[0].data(), g[1].data(), dout.data(), cv);
  };
  CHECK(raw_gradcheck_error(ac_fwd, ac_bwd, t) < 1e-3);
}
