// Parameter-free layers and containers.
#pragma once
#include <cstdint>
#include <random>

#include "core/ops/pool.h"
#include "nn/module.h"

namespace qforge::nn {

class Identity : public Module {
 public:
  std::string type() const override { return "Identity"; }
  Tensor forward(const Tensor& x) override { return x; }
};

class ReLU : public Module {
 public:
  std::string type() const override { return "ReLU"; }
  Tensor forward(const Tensor& x) override;
};

class ReLU6 : public Module {
 public:
  std::string type() const override { return "ReLU6"; }
  Tensor forward(const Tensor& x) override;
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int kernel, int stride, int padding) : args{kernel, kernel, stride, stride, padding, padding} {}
  std::string type() const override { return "MaxPool2d"; }
  Tensor forward(const Tensor& x) override;
  Pool2dArgs args;
};

// Only output size 1x1 (global average pooling), what the ResNets use.
class AdaptiveAvgPool2d : public Module {
 public:
  std::string type() const override { return "AdaptiveAvgPool2d"; }
  Tensor forward(const Tensor& x) override;
};

class Flatten : public Module {
 public:
  std::string type() const override { return "Flatten"; }
  Tensor forward(const Tensor& x) override;  // (N, ...) -> (N, rest)
};

// Inverted dropout (torch.nn.Dropout): in training, zeroes each element with
// probability p and scales the rest by 1 / (1 - p); the identity in eval mode.
// The module owns its generator, seeded at construction (a model draws the seed
// from its own seed), so a training run repeats.
class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f, uint64_t seed = 0);
  std::string type() const override { return "Dropout"; }
  Tensor forward(const Tensor& x) override;
  float p;

 private:
  std::mt19937_64 rng_;
};

// Children run in order; named "0", "1", ... as torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> mods);
  std::string type() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;
  void append(ModulePtr m);
};

// a + b, optionally followed by ReLU: the residual join, a module of its own so
// quantization can observe its output (PyTorch's FloatFunctional.add_relu).
class Add : public Module {
 public:
  explicit Add(bool relu) : relu(relu) {}
  std::string type() const override { return relu ? "AddReLU" : "Add"; }
  Tensor forward(const Tensor& x) override;  // not used: Add takes two inputs
  Tensor operator()(const Tensor& a, const Tensor& b);
  bool relu;
};

}  // namespace qforge::nn
