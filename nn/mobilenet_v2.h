// MobileNetV2 in torchvision's layout and parameter names (torchvision 0.14's
// mobilenet_v2), so its state dicts load as they are:
//
//   features.0        Conv 3x3 s2 + BN + ReLU6 (a Sequential 0/1/2)
//   features.1..17    InvertedResidual: child "conv", a Sequential of
//                     [expand 1x1 Conv+BN+ReLU6 as a Sequential,] depthwise 3x3
//                     Conv+BN+ReLU6 as a Sequential, projection 1x1 Conv, BN;
//                     plus, where stride is 1 and in == out, the residual join
//                     "add" (an Add without ReLU and without state)
//   features.18       Conv 1x1 + BN + ReLU6 to last_channel
//   avgpool, flatten, classifier = Sequential(0 Dropout, 1 Linear)
//
// Channel counts are c * width_mult rounded to a multiple of 8 as torchvision
// rounds them. Stem "small" (for 28-32 px images) runs features.0 and
// features.2 (the first block of the 24-channel stage) at stride 1, names kept.
//
// Forward runs the children by name, so quantization can swap them.
#pragma once
#include <random>

#include "nn/module.h"

namespace qforge::nn {

struct MobileNetV2Config {
  int in_channels = 3;
  int num_classes = 1000;
  double width_mult = 1.0;
  std::string stem = "imagenet";  // or "small"
  float dropout = 0.2f;           // before the classifier's Linear, training only
  uint64_t seed = 0;              // initialisation and the dropout generator
};

// torchvision's channel rounding: v to the nearest multiple of divisor, at
// least divisor, and never more than 10% below v.
int make_divisible(double v, int divisor);

class InvertedResidual : public Module {
 public:
  InvertedResidual(int in, int out, int stride, int expand_ratio, std::mt19937_64& rng);
  std::string type() const override { return "InvertedResidual"; }
  Tensor forward(const Tensor& x) override;
  bool residual() const { return residual_; }

 private:
  bool residual_;
};

class MobileNetV2 : public Module {
 public:
  explicit MobileNetV2(const MobileNetV2Config& cfg);
  std::string type() const override { return "MobileNetV2"; }
  Tensor forward(const Tensor& x) override;
  const MobileNetV2Config& config() const { return cfg_; }
  int last_channel() const { return last_channel_; }

 private:
  MobileNetV2Config cfg_;
  int last_channel_;
};

std::shared_ptr<MobileNetV2> mobilenet_v2(const MobileNetV2Config& cfg);

}  // namespace qforge::nn
