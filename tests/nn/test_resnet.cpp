#include <doctest/doctest.h>

#include <set>
#include <string>

#include "core/autograd.h"
#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/ops/gemm_f32.h"
#include "core/ops/loss.h"
#include "core/options.h"
#include "core/threads.h"
#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/resnet.h"
#include "optim/sgd.h"

using namespace qforge;
using namespace qforge::nn;

TEST_CASE("resnet18: torchvision's parameter count, names and output shape") {
  set_num_threads(2);
  auto net = resnet18({3, 1000, "imagenet", 1.0, 0});
  CHECK(count_parameters(*net) == 11689512);
  std::set<std::string> names;
  for (auto& [n, _] : net->state_dict()) names.insert(n);
  for (const char* n : {"conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.bias",
                        "layer4.1.bn2.running_mean", "fc.weight", "fc.bias"})
    CHECK(names.count(n) == 1);
  CHECK(names.size() == 62 + 40);  // 62 parameters, 20 BNs x 2 running buffers
  net->eval();
  std::mt19937_64 rng(0);
  NoGradGuard g;
  Tensor y = (*net)(Tensor::randn({2, 3, 224, 224}, rng));
  CHECK(y.shape() == Shape{2, 1000});
  for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(std::isfinite(y.data()[i]));

  auto small = resnet18({1, 10, "small", 0.25, 0});
  small->eval();
  CHECK((*small)(Tensor::randn({3, 1, 28, 28}, rng)).shape() == Shape{3, 10});
  CHECK_THROWS_WITH_AS((*small)(Tensor::zeros({1, 3, 28, 28})), doctest::Contains("(1,3,28,28)"), Error);
  set_num_threads(1);
}

TEST_CASE("state_dict round trip and load errors") {
  auto a = resnet18({1, 10, "small", 0.125, 1}), b = resnet18({1, 10, "small", 0.125, 2});
  std::map<std::string, Tensor> sd;
  for (auto& [n, t] : a->state_dict()) sd[n] = t.clone();
  b->load_state_dict(sd, "a.safetensors");
  for (auto& [n, t] : b->state_dict())
    for (int64_t i = 0; i < t.numel(); ++i) REQUIRE(t.data()[i] == sd[n].data()[i]);
  auto bad = sd;
  bad["fc.weight"] = Tensor::zeros({3, 3});
  CHECK_THROWS_WITH_AS(b->load_state_dict(bad, "a.safetensors"), doctest::Contains("fc.weight"), Error);
  bad = sd;
  bad.erase("bn1.running_mean");
  CHECK_THROWS_WITH_AS(b->load_state_dict(bad, "a.safetensors"), doctest::Contains("bn1.running_mean"), Error);
  bad = sd;
  bad["extra.weight"] = Tensor::zeros({1});
  CHECK_THROWS_WITH_AS(b->load_state_dict(bad, "a.safetensors"), doctest::Contains("extra.weight"), Error);
}

TEST_CASE("resnet18: evaluations between training steps see the new weights (the layers' cached filters)") {
  // 14x14 maps at batch 1 take Winograd with filters cached by the layers (core/ops/conv2d.h); an
  // evaluation after an SGD step must give what a fresh copy of the network gives.
  set_num_threads(2);
  auto net = resnet18({3, 10, "imagenet", 0.25, 0});
  std::mt19937_64 rng(3);
  Tensor x = Tensor::randn({1, 3, 224, 224}, rng);
  auto eval = [&](Module& m) {
    NoGradGuard g;
    m.eval();
    return m(x);
  };
  auto same_as_twin = [&] {  // a new network (no cached filters) given the same weights
    auto twin = resnet18({3, 10, "imagenet", 0.25, 1});
    auto from = net->state_dict(), to = twin->state_dict();
    REQUIRE(from.size() == to.size());
    for (size_t i = 0; i < from.size(); ++i) to[i].second.copy_from(from[i].second);
    Tensor a = eval(*net), b = eval(*twin);
    return std::vector<float>(a.data(), a.data() + a.numel()) == std::vector<float>(b.data(), b.data() + b.numel());
  };
  CHECK(same_as_twin());
  int64_t cached = 0;
  for (auto& [name, m] : net->named_modules())
    if (auto* c = dynamic_cast<Conv2d*>(m.get())) cached += conv_filter_cache_bytes(*c->filter_cache());
  if (float_kernels().winograd) CHECK(cached > 0);
  optim::SGD opt(net->named_parameters(), {0.5f});
  net->train();
  cross_entropy(net->forward(x), {3}).backward();
  opt.step();
  CHECK(same_as_twin());
  set_num_threads(1);
}

TEST_CASE("resnet18: a frozen network prepares its filters once and gives the unfrozen network's bits") {
  // 224x224 at batch 1: Winograd layers, and 7x7 layers on channels-last products with packed weights
  // (core/ops/conv2d.h), all kept in the frozen caches.
  set_num_threads(2);
  auto net = resnet18({3, 10, "imagenet", 0.25, 0}), twin = resnet18({3, 10, "imagenet", 0.25, 1});
  auto from = net->state_dict(), to = twin->state_dict();
  REQUIRE(from.size() == to.size());
  for (size_t i = 0; i < from.size(); ++i) to[i].second.copy_from(from[i].second);
  std::mt19937_64 rng(5);
  Tensor x = Tensor::randn({1, 3, 224, 224}, rng);
  auto eval = [&](Module& m) {
    NoGradGuard g;
    m.eval();
    Tensor y = m(x);
    return std::vector<float>(y.data(), y.data() + y.numel());
  };
  int convs = 0;
  for (auto& [name, m] : net->named_modules()) convs += dynamic_cast<Conv2d*>(m.get()) != nullptr;
  CHECK(freeze_conv_filters(*net) == convs);
  const std::vector<float> want = eval(*twin);
  CHECK(eval(*net) == want);
  CHECK(eval(*net) == want);  // a second call: the same bits
  // Frozen, a write to the weights is not seen (the filters were made once) until frozen again: a
  // 7x7 layer's packed weights (channels-last products, level avx512), else a 14x14 layer's
  // Winograd filters (levels avx2 and up); at the scalar level nothing is kept and the write is seen.
  const bool packed = gemm_f32_kernel() != nullptr && options().winograd == WinogradMode::automatic;
  const bool kept = float_kernels().winograd != nullptr && options().winograd == WinogradMode::automatic;
  const std::string layer = packed ? "layer4.1.conv2" : "layer3.1.conv2";
  Tensor w;
  for (auto& [name, m] : net->named_modules())
    if (auto* c = dynamic_cast<Conv2d*>(m.get()); c && name == layer) w = c->weight;
  REQUIRE(w.defined());
  for (int64_t i = 0; i < w.numel(); ++i) w.data()[i] *= 2.f;
  CHECK((eval(*net) == want) == kept);
  freeze_conv_filters(*net);
  for (auto& [name, m] : twin->named_modules())
    if (auto* c = dynamic_cast<Conv2d*>(m.get()); c && name == layer) c->weight.copy_from(w);
  const std::vector<float> doubled = eval(*twin);
  CHECK(doubled != want);
  CHECK(eval(*net) == doubled);
  CHECK(freeze_conv_filters(*net, false) == convs);  // thawed: every call compares again
  for (int64_t i = 0; i < w.numel(); ++i) w.data()[i] *= 0.5f;
  CHECK(eval(*net) == want);
  set_num_threads(1);
}
