#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops/loss.h"
#include "nn/batchnorm2d.h"
#include "nn/containers.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/mobilenet_v2.h"
#include "nn/safetensors.h"
#include "optim/sgd.h"
#include "tiny_problem.h"
#include "tensor_compare.h"

using namespace qforge;
using qforge::testing::max_abs_diff;
using namespace qforge::nn;

namespace {

const std::string kFixture = std::string(QFORGE_TESTS_DIR) + "/nn/fixtures/mobilenet_v2_w025.safetensors";

// The fixture's state dict as load_state_dict takes it: F32 tensors under
// torchvision's names; num_batches_tracked (I64, which qforge does not keep)
// checked and dropped, as checkpoints drop it.
std::map<std::string, Tensor> fixture_state(const SafeTensors& st) {
  std::map<std::string, Tensor> sd;
  for (auto& [name, e] : st.tensors) {
    if (name == "input" || name == "logits" || name == "logits_small") continue;
    if (name.ends_with(".num_batches_tracked")) {
      REQUIRE(e.dtype == "I64");
      int64_t n;
      std::memcpy(&n, e.bytes.data(), 8);
      CHECK(n == 4);  // the script's training batches
      continue;
    }
    REQUIRE(e.dtype == "F32");
    sd[name] = st.f32(name);
  }
  return sd;
}

Shape shape_of(const Module& m, const std::string& name) {
  for (auto& [n, t] : m.state_dict())
    if (n == name) return t.shape();
  FAIL("no tensor " << name);
  return {};
}

}  // namespace

TEST_CASE("make_divisible rounds as torchvision's _make_divisible") {
  CHECK(make_divisible(32 * 1.0, 8) == 32);
  CHECK(make_divisible(32 * 0.25, 8) == 8);
  CHECK(make_divisible(16 * 0.25, 8) == 8);   // never below the divisor
  CHECK(make_divisible(24 * 0.75, 8) == 24);  // 18 -> 16 is more than 10% down: one more step
  CHECK(make_divisible(96 * 0.35, 8) == 32);  // 33.6 -> 32
  CHECK(make_divisible(160 * 1.4, 8) == 224);
  CHECK(make_divisible(1280 * 1.0, 8) == 1280);
  CHECK(make_divisible(12, 8) == 16);  // halves round up
}

TEST_CASE("mobilenet_v2: torchvision's parameter count, names and shapes") {
  auto net = mobilenet_v2({});
  CHECK(count_parameters(*net) == 3504872);
  CHECK(net->last_channel() == 1280);
  NamedTensors sd = net->state_dict();
  CHECK(sd.size() == 158 + 2 * 52);  // 158 parameters; 52 BNs x 2 running buffers
  const std::pair<const char*, Shape> expect[] = {
      {"features.0.0.weight", {32, 3, 3, 3}},          {"features.0.1.running_var", {32}},
      {"features.1.conv.0.0.weight", {32, 1, 3, 3}},  // t = 1: no expansion, depthwise first
      {"features.1.conv.1.weight", {16, 32, 1, 1}},    {"features.1.conv.2.bias", {16}},
      {"features.2.conv.0.0.weight", {96, 16, 1, 1}},  {"features.2.conv.1.0.weight", {96, 1, 3, 3}},
      {"features.2.conv.2.weight", {24, 96, 1, 1}},    {"features.2.conv.3.running_mean", {24}},
      {"features.17.conv.1.0.weight", {960, 1, 3, 3}}, {"features.17.conv.2.weight", {320, 960, 1, 1}},
      {"features.18.0.weight", {1280, 320, 1, 1}},     {"features.18.1.weight", {1280}},
      {"classifier.1.weight", {1000, 1280}},           {"classifier.1.bias", {1000}},
  };
  for (auto& [n, s] : expect) CHECK_MESSAGE(shape_of(*net, n) == s, n);
  std::set<std::string> names;
  for (auto& [n, _] : sd) names.insert(n);
  CHECK(names.count("features.1.conv.3.weight") == 0);
  CHECK(names.count("features.19.0.weight") == 0);

  // The residual joins: stride 1 and in == out (1 + 2 + 3 + 2 + 2 blocks), stateless.
  int adds = 0, dropouts = 0;
  for (auto& [n, m] : net->named_modules()) {
    if (m->type() == "Add") {
      ++adds;
      CHECK(n.ends_with(".add"));
      CHECK(m->state_dict().empty());
    }
    if (auto d = std::dynamic_pointer_cast<Dropout>(m)) {
      ++dropouts;
      CHECK(n == "classifier.0");
      CHECK(d->p == doctest::Approx(0.2));
    }
  }
  CHECK(adds == 10);
  CHECK(dropouts == 1);
  CHECK_FALSE(std::static_pointer_cast<InvertedResidual>(net->child("features")->child("2"))->residual());
  CHECK(std::static_pointer_cast<InvertedResidual>(net->child("features")->child("3"))->residual());

  // torchvision's initialisation: BN ones and zeros, the classifier N(0, 0.01) with zero bias.
  auto fc = std::static_pointer_cast<Linear>(net->child("classifier")->child("1"));
  double ss = 0;
  for (int64_t i = 0; i < fc->weight.numel(); ++i) ss += fc->weight.data()[i] * fc->weight.data()[i];
  CHECK(std::sqrt(ss / fc->weight.numel()) == doctest::Approx(0.01).epsilon(0.02));
  for (int64_t i = 0; i < fc->bias.numel(); ++i) REQUIRE(fc->bias.data()[i] == 0.f);

  net->eval();
  NoGradGuard g;
  std::mt19937_64 rng(0);
  Tensor y = (*net)(Tensor::randn({1, 3, 32, 32}, rng));
  CHECK(y.shape() == Shape{1, 1000});
  for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(std::isfinite(y.data()[i]));
  CHECK_THROWS_WITH_AS((*net)(Tensor::zeros({1, 1, 32, 32})), doctest::Contains("(1,1,32,32)"), Error);
  CHECK_THROWS_WITH_AS(mobilenet_v2({.stem = "tiny"}), doctest::Contains("tiny"), Error);
}

TEST_CASE("mobilenet_v2: width_mult rounds channels as torchvision") {
  auto net = mobilenet_v2({.num_classes = 10, .width_mult = 0.25});
  CHECK(shape_of(*net, "features.0.0.weight") == Shape{8, 3, 3, 3});
  CHECK(shape_of(*net, "features.17.conv.2.weight") == Shape{80, 240, 1, 1});  // 160 * 0.25 = 40 in, x 6
  CHECK(shape_of(*net, "classifier.1.weight") == Shape{10, 1280});             // last_channel never below 1280
  auto wide = mobilenet_v2({.num_classes = 10, .width_mult = 1.4});
  CHECK(wide->last_channel() == 1792);
  CHECK(shape_of(*wide, "features.0.0.weight") == Shape{48, 3, 3, 3});
}

TEST_CASE("mobilenet_v2: is_container descends into the blocks, not into leaves") {
  auto net = mobilenet_v2({.num_classes = 10, .width_mult = 0.25, .stem = "small"});
  CHECK(is_container(*net));
  CHECK(is_container(*net->child("features")));
  CHECK(is_container(*net->child("features")->child("3")));  // InvertedResidual
  CHECK(is_container(*net->child("features")->child("3")->child("conv")));
  CHECK_FALSE(is_container(*net->child("features")->child("3")->child("add")));
  CHECK_FALSE(is_container(*net->child("classifier")->child("0")));  // Dropout
  CHECK_FALSE(is_container(*net->child("features")->child("0")->child("0")));

  net->eval();
  NoGradGuard g;
  std::map<std::string, int> kinds;
  {
    Tracer tr([](const Module& m) { return !is_container(m); });
    (*net)(Tensor::zeros({1, 3, 16, 16}));
    for (auto& e : tr.events) ++kinds[e.module->type()];
    for (auto& e : tr.events)
      if (e.module->type() == "Add") CHECK(e.inputs.size() == 2);
  }
  CHECK(kinds["Conv2d"] == 52);
  CHECK(kinds["BatchNorm2d"] == 52);
  CHECK(kinds["ReLU6"] == 35);
  // 10 as at width 1, plus features.1 (8 -> 8 at this width) and features.2 (8 -> 8, stride 1 with this stem).
  CHECK(kinds["Add"] == 12);
  CHECK(kinds["Dropout"] == 1);
  CHECK(kinds["Linear"] == 1);
  CHECK(kinds["Identity"] == 1);  // "quant"
  CHECK(kinds["AdaptiveAvgPool2d"] == 1);
}

TEST_CASE("mobilenet_v2: matches PyTorch on the committed fixture") {
  SafeTensors st = read_safetensors(kFixture);
  REQUIRE(st.meta("magic") == "qforge-fixture-mobilenet_v2");
  REQUIRE(st.meta("version") == "1");
  std::map<std::string, Tensor> sd = fixture_state(st);
  Tensor x = st.f32("input");
  for (std::string stem : {"imagenet", "small"}) {
    CAPTURE(stem);
    auto net = mobilenet_v2({.num_classes = 10, .width_mult = 0.25, .stem = stem, .seed = 5});
    // Strict: every name the model has is in the file and every name in the file is in the model.
    net->load_state_dict(sd, kFixture);
    net->eval();
    NoGradGuard g;
    Tensor y = (*net)(x);
    Tensor want = st.f32(stem == "small" ? "logits_small" : "logits");
    CHECK(max_abs_diff(y, want) < 1e-4);
    // The comparison means something: the logits are not all alike.
    double spread = 0;
    for (int64_t i = 1; i < want.numel(); ++i)
      spread = std::max(spread, static_cast<double>(std::abs(want.data()[i] - want.data()[0])));
    CHECK(spread > 0.5);
  }
}

TEST_CASE("mobilenet_v2: the small stem keeps 28 px at features.2") {
  auto net = mobilenet_v2({.in_channels = 1, .num_classes = 10, .width_mult = 0.5, .stem = "small"});
  auto big = mobilenet_v2({.in_channels = 1, .num_classes = 10, .width_mult = 0.5});
  net->eval();
  big->eval();
  NoGradGuard g;
  std::mt19937_64 rng(1);
  Tensor x = Tensor::randn({2, 1, 28, 28}, rng);
  // Spatial size after each of features.0..18.
  auto sizes = [&](Module& m) {
    std::vector<int64_t> out;
    Tensor y = x;
    for (auto& [_, f] : m.child("features")->children()) {
      y = (*f)(y);
      out.push_back(y.size(2));
      CHECK(y.size(3) == y.size(2));
    }
    return out;
  };
  CHECK(sizes(*net) == std::vector<int64_t>{28, 28, 28, 28, 14, 14, 14, 7, 7, 7, 7, 7, 7, 7, 4, 4, 4, 4, 4});
  CHECK(sizes(*big) == std::vector<int64_t>{14, 14, 7, 7, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1});
  CHECK((*net)(x).shape() == Shape{2, 10});
}

TEST_CASE("mobilenet_v2: trains on a tiny problem, and dropout repeats with the seed") {
  auto run = [](uint64_t seed, int steps) {
    std::mt19937_64 rng(3);
    auto [x, y] = testing::quadrant_problem(16, rng);
    auto net = mobilenet_v2(
        {.in_channels = 1, .num_classes = 4, .width_mult = 0.25, .stem = "small", .dropout = 0.2f, .seed = seed});
    net->train();
    optim::SGD opt(net->named_parameters(), {0.01f, 0.9f, 0.f, false, true});
    std::vector<float> losses;
    for (int step = 0; step < steps; ++step) {
      opt.zero_grad();
      Tensor loss = cross_entropy((*net)(x), y);
      loss.backward();
      if (step == 0)
        for (auto& [n, p] : net->named_parameters()) REQUIRE_MESSAGE(p.grad().defined(), n);
      opt.step();
      losses.push_back(loss.item());
    }
    return losses;
  };
  // 30 steps: the first dozen wander with the last bits of the float sums (each instruction set's
  // kernels'): after 12 the loss was 0.17-0.63 of the first, depending on the level; after 30,
  // at most 0.002 of it on every level.
  std::vector<float> a = run(7, 30), b = run(7, 3);
  for (float l : a) REQUIRE(std::isfinite(l));
  CHECK(a.back() < 0.1f * a.front());
  // Same seed: same initialisation and the same dropout masks, so the same losses.
  CHECK(std::vector<float>(a.begin(), a.begin() + 3) == b);

  // Dropout acts in training only: two training-mode forwards differ, eval ones agree.
  auto net = mobilenet_v2({.in_channels = 1, .num_classes = 4, .width_mult = 0.25, .stem = "small", .dropout = 0.5f});
  std::mt19937_64 rng(4);
  Tensor x = Tensor::randn({4, 1, 8, 8}, rng);
  NoGradGuard g;
  net->train();
  Tensor t1 = (*net)(x), t2 = (*net)(x);
  CHECK(max_abs_diff(t1, t2) > 0);
  net->eval();
  Tensor e1 = (*net)(x), e2 = (*net)(x);
  CHECK(max_abs_diff(e1, e2) == 0);
}
