#include <doctest/doctest.h>

#include "core/ops/loss.h"
#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"
#include "optim/sgd.h"
#include "tiny_problem.h"

using namespace qforge;
using namespace qforge::nn;

TEST_CASE("a tiny CNN learns a synthetic problem to near-zero loss") {
  std::mt19937_64 rng(3);
  auto [x, y] = testing::quadrant_problem(64, rng);
  auto net = testing::tiny_cnn(rng);
  optim::SGD opt(net->named_parameters(), {0.1f, 0.9f, 0.f, false, true});
  float first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy((*net)(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  CHECK(first > 1.0f);
  CHECK(last < 0.02f);
}

TEST_CASE("SGD step equals the hand-computed update") {
  // p = [1, -2], grad = [0.5, 0.25], lr 0.1, momentum 0.9, wd 0.01.
  Tensor w = Tensor::from({1, 2}, {1.f, -2.f}).requires_grad_();
  Tensor bias = Tensor::from({2}, {1.f, 1.f}).requires_grad_();
  for (bool nesterov : {false, true}) {
    Tensor p = w.clone().requires_grad_(), b = bias.clone().requires_grad_();
    optim::SGD opt({{"w", p}, {"b", b}}, {0.1f, 0.9f, 0.01f, nesterov, false});
    for (int s = 0; s < 2; ++s) {
      p.zero_grad();
      b.zero_grad();
      p.impl()->grad_data()[0] = 0.5f, p.impl()->grad_data()[1] = 0.25f;
      b.impl()->grad_data()[0] = 0.5f, b.impl()->grad_data()[1] = 0.25f;
      opt.step();
    }
    // By hand: step 1 d = g + wd p, buf = d; step 2 buf = 0.9 buf + d'.
    double p0 = 1, buf = 0;
    for (int s = 0; s < 2; ++s) {
      double d = 0.5 + 0.01 * p0;
      buf = s == 0 ? d : 0.9 * buf + d;
      p0 -= 0.1 * (nesterov ? d + 0.9 * buf : buf);
    }
    CHECK(p.data()[0] == doctest::Approx(p0).epsilon(1e-6));
    // 1-D parameter: no weight decay when decay_bn_and_bias is false.
    double b0 = 1, bb = 0;
    for (int s = 0; s < 2; ++s) {
      bb = s == 0 ? 0.5 : 0.9 * bb + 0.5;
      b0 -= 0.1 * (nesterov ? 0.5 + 0.9 * bb : bb);
    }
    CHECK(b.data()[0] == doctest::Approx(b0).epsilon(1e-6));
  }
}
