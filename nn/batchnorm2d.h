// BatchNorm2d: weight (gamma), bias (beta); buffers running_mean, running_var.
#pragma once
#include "nn/module.h"

namespace qforge::nn {

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int channels, float eps = 1e-5f, float momentum = 0.1f);
  std::string type() const override { return "BatchNorm2d"; }
  Tensor forward(const Tensor& x) override;

  int channels() const { return static_cast<int>(weight.numel()); }
  float eps, momentum;
  Tensor weight, bias, running_mean, running_var;
};

}  // namespace qforge::nn
