// Tiny int8 graphs made in a second: a random-weight ResNet18 or MobileNetV2, fused, calibrated
// (static PTQ, min/max observers) on random batches, converted. For tests of the runtime and its
// C API that need a real graph (residual joins, pools, depthwise convs), not a trained one.
#pragma once
#include <random>
#include <string>
#include <vector>

#include "nn/mobilenet_v2.h"
#include "nn/resnet.h"
#include "quant/convert.h"
#include "quant/fuse.h"
#include "quant/prepare.h"

namespace qforge::testing {

enum class TinyArch { kResNet18, kMobileNetV2 };

// input (channels, size, size); 10 classes named "class0".."class9"; config data.mean/std as given.
inline quant::Int8Graph tiny_int8_graph(TinyArch arch, int channels, int size, uint64_t seed,
                                        std::vector<float> mean = {0.5f}, std::vector<float> sd = {0.25f}) {
  nn::ModulePtr net;
  if (arch == TinyArch::kResNet18) {
    net = nn::resnet18({channels, 10, "small", 0.125, seed});
  } else {
    nn::MobileNetV2Config c;
    c.in_channels = channels;
    c.num_classes = 10;
    c.width_mult = 0.25;
    c.stem = "small";
    c.seed = seed;
    net = nn::mobilenet_v2(c);
  }
  const std::vector<int> shape = {channels, size, size};
  net->eval();
  quant::fuse_modules(*net, false, shape);
  quant::QConfigMapping qc;
  qc.global.activation.kind = "minmax";
  quant::prepare(*net, qc);
  std::mt19937_64 rng(seed + 1);
  int left = 3;
  quant::calibrate(
      *net,
      [&](Tensor& x) {
        if (left-- <= 0) return false;
        x = Tensor::randn({4, channels, size, size}, rng);
        return true;
      },
      3);
  quant::Int8Graph g = quant::convert(*net, shape);
  for (int k = 0; k < 10; ++k) g.classes.push_back("class" + std::to_string(k));
  g.config = {{"data", {{"mean", mean}, {"std", sd}}}};
  return g;
}

}  // namespace qforge::testing
