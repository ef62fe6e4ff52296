// apps/models: model.arch picks the network; a foreign file with torchvision's
// names loads into either.
#include <doctest/doctest.h>

#include "apps/models.h"
#include "cli_util.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/ops/gemm_f32.h"
#include "core/options.h"
#include "nn/layers.h"
#include "nn/mobilenet_v2.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"

using namespace qforge;
using qforge::testing::ScratchDir;

namespace {

// The schema's defaults with a model section, validated as a config file would be.
apps::Config model_config(const nlohmann::json& model) {
  nlohmann::json j = {{"model", model}};
  return apps::make_config(j, "test config", {}, false);
}

}  // namespace

TEST_CASE("models: model.arch builds resnet18 or mobilenet_v2, with width_mult and dropout") {
  auto r = apps::build_float_model(model_config({{"arch", "resnet18"}, {"width", 0.25}}));
  CHECK(std::dynamic_pointer_cast<nn::ResNet>(r));

  auto m = apps::build_float_model(
      model_config({{"arch", "mobilenet_v2"}, {"width_mult", 0.5}, {"dropout", 0.3}, {"num_classes", 7}}));
  auto mb = std::dynamic_pointer_cast<nn::MobileNetV2>(m);
  REQUIRE(mb);
  CHECK(mb->config().width_mult == 0.5);
  CHECK(mb->config().num_classes == 7);
  CHECK(mb->config().in_channels == 1);
  CHECK(mb->config().stem == "small");
  CHECK(std::static_pointer_cast<nn::Dropout>(mb->child("classifier")->child("0"))->p == doctest::Approx(0.3));

  // A config from before MobileNetV2 has neither key: torchvision's defaults.
  apps::Config old = model_config({{"arch", "mobilenet_v2"}});
  old.j["model"].erase("width_mult");
  old.j["model"].erase("dropout");
  auto d = std::dynamic_pointer_cast<nn::MobileNetV2>(apps::build_float_model(old));
  REQUIRE(d);
  CHECK(d->config().width_mult == 1.0);
  CHECK(d->config().dropout == doctest::Approx(0.2));

  CHECK_THROWS_WITH_AS(apps::build_float_model(model_config({{"arch", "vgg"}})), doctest::Contains("vgg"), Error);
}

TEST_CASE("models: a plain safetensors file with torchvision's MobileNetV2 names loads as init_from and as a model") {
  ScratchDir dir("models");
  const nlohmann::json model = {{"arch", "mobilenet_v2"}, {"width_mult", 0.25}, {"in_channels", 3}};
  auto src = nn::mobilenet_v2({.num_classes = 10, .width_mult = 0.25, .stem = "small", .seed = 42});
  std::vector<std::pair<std::string, nn::StEntry>> entries;
  for (auto& [n, t] : src->state_dict()) entries.emplace_back(n, nn::f32_entry(t));
  const int64_t tracked = 3;  // torchvision's extra buffer, which qforge drops
  entries.emplace_back("features.0.1.num_batches_tracked", nn::raw_entry("I64", {}, &tracked));
  const std::string file = dir / "mbv2.safetensors";
  nn::write_safetensors(file, entries, {});

  apps::Config cfg = model_config(model);
  cfg.j["model"]["init_from"] = file;
  auto a = apps::build_float_model(cfg);
  apps::Config plain = model_config(model);
  apps::LoadedModel lm = apps::load_model_file(file, &plain);
  CHECK(lm.kind == "float");
  src->eval();
  a->eval();
  NoGradGuard g;
  std::mt19937_64 rng(1);
  Tensor x = Tensor::randn({2, 3, 16, 16}, rng);
  Tensor want = (*src)(x), ya = (*a)(x), yb = (*lm.module)(x);
  for (int64_t i = 0; i < want.numel(); ++i) {
    REQUIRE(ya.data()[i] == want.data()[i]);
    REQUIRE(yb.data()[i] == want.data()[i]);
  }
}

TEST_CASE("models: ready_for_inference folds a float model (same outputs within rounding) and freezes its filters") {
  for (const char* arch : {"resnet18", "mobilenet_v2"}) {
    CAPTURE(arch);
    apps::LoadedModel lm;
    lm.config = model_config({{"arch", arch}, {"width", 0.25}, {"width_mult", 0.25}});
    lm.module = apps::build_float_model(lm.config);
    lm.kind = "float";
    lm.module->eval();
    // BatchNorm statistics away from the identity, so that folding them changes the weights.
    for (auto& [name, t] : lm.module->state_dict())
      if (name.find("running_var") != std::string::npos)
        for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 0.5f + 0.01f * static_cast<float>(i % 7);
    std::mt19937_64 rng(9);
    const Tensor x = Tensor::randn({2, 1, 28, 28}, rng);
    NoGradGuard g;
    const Tensor want = (*lm.module)(x);
    auto batchnorms = [&] {
      int n = 0;
      for (auto& [name, m] : lm.module->named_modules()) n += m->type() == "BatchNorm2d";
      return n;
    };
    CHECK(batchnorms() > 0);
    apps::ready_for_inference(lm, {1, 28, 28});
    CHECK(batchnorms() == 0);  // folded into the convolutions
    const Tensor got = (*lm.module)(x);
    REQUIRE(got.numel() == want.numel());
    for (int64_t i = 0; i < got.numel(); ++i) CHECK(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-3));
    // Frozen: the filters were made at the first call; a write to the weights of a layer that keeps
    // them (Winograd's 3x3 layers at 28x28; ResNet's 4x4 layer4 at batch 2, channels-last) is not seen.
    // MobileNetV2's only 3x3 layer that is not depthwise, its 1-channel stem, keeps none: it runs
    // direct (conv2d_direct_taps) or, at the scalar level, by im2col; there the write is seen. So is
    // every write at the scalar level (no Winograd), and layer4's below avx512 (no channels-last).
    const bool mobilenet = std::string(arch) != "resnet18";
    const bool winograd = float_kernels().winograd != nullptr && options().winograd == WinogradMode::automatic;
    const bool packed = winograd && gemm_f32_kernel() != nullptr;
    std::vector<std::string> kept = {"layer1.0.conv1."};
    if (packed) kept.push_back("layer4.1.conv2.");
    if (mobilenet) kept = {"features.0."};
    int written = 0;
    for (auto& [name, t] : lm.module->state_dict())
      for (const std::string& prefix : kept)
        if (name.rfind(prefix, 0) == 0 && t.dim() == 4) {
          for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 0.f;
          ++written;
        }
    CHECK(written == static_cast<int>(kept.size()));
    const Tensor after = (*lm.module)(x);
    const bool same = std::vector<float>(after.data(), after.data() + after.numel()) ==
                      std::vector<float>(got.data(), got.data() + got.numel());
    CHECK(same == (!mobilenet && winograd));
  }
}
