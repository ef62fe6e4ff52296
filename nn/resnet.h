// ResNet18 in torchvision's layout and parameter names, with two stems:
// "imagenet" (7x7 stride 2 conv + 3x3 max pool) and "small" (3x3 stride 1, no
// max pool, for 28-32 px images). `width` multiplies every channel count.
//
// Forward runs the children by name, so quantization can swap them (a fused
// Conv+BN+ReLU in place of conv1, Identity in place of bn1 and relu).
#pragma once
#include <random>

#include "nn/containers.h"  // is_container, which used to live here
#include "nn/module.h"

namespace qforge::nn {

struct ResNetConfig {
  int in_channels = 3;
  int num_classes = 1000;
  std::string stem = "imagenet";  // or "small"
  double width = 1.0;
  uint64_t seed = 0;  // initialisation
};

class BasicBlock : public Module {
 public:
  BasicBlock(int in, int out, int stride, std::mt19937_64& rng);
  std::string type() const override { return "BasicBlock"; }
  Tensor forward(const Tensor& x) override;
};

class ResNet : public Module {
 public:
  ResNet(const ResNetConfig& cfg, const std::vector<int>& blocks);
  std::string type() const override { return "ResNet"; }
  Tensor forward(const Tensor& x) override;
  const ResNetConfig& config() const { return cfg_; }

 private:
  ResNetConfig cfg_;
};

std::shared_ptr<ResNet> resnet18(const ResNetConfig& cfg);

}  // namespace qforge::nn
