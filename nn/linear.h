// Linear layer: weight (OUT, IN), bias (OUT).
#pragma once
#include <random>

#include "nn/module.h"

namespace qforge::nn {

class Linear : public Module {
 public:
  Linear(int in_features, int out_features, bool bias, std::mt19937_64& rng);
  std::string type() const override { return "Linear"; }
  Tensor forward(const Tensor& x) override;

  int in_features() const { return static_cast<int>(weight.size(1)); }
  int out_features() const { return static_cast<int>(weight.size(0)); }
  Tensor weight, bias;
};

}  // namespace qforge::nn
