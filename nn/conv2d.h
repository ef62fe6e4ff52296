// Conv2d layer: weight (OC, C/groups, KH, KW), optional bias (OC).
#pragma once
#include <random>

#include "core/ops/conv2d.h"
#include "nn/module.h"

namespace qforge::nn {

struct Conv2dOptions {
  int in_channels, out_channels, kernel;
  int stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = false;
};

class Conv2d : public Module {
 public:
  Conv2d(const Conv2dOptions& o, std::mt19937_64& rng);
  std::string type() const override { return "Conv2d"; }
  Tensor forward(const Tensor& x) override;

  const Conv2dOptions& options() const { return opt_; }
  Conv2dArgs args() const;
  Tensor weight, bias;  // bias undefined when the layer has none

 private:
  Conv2dOptions opt_;
};

}  // namespace qforge::nn
