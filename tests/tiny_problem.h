// A tiny learnable problem for tests: 8x8 images whose class (0..3) is the
// quadrant holding a bright 2x2 square, and the small CNN that learns it.
#pragma once
#include <memory>
#include <random>
#include <vector>

#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"

namespace qforge::testing {

struct TinyProblem {
  Tensor x;                // (n, 1, 8, 8)
  std::vector<int32_t> y;  // (n)
};

inline TinyProblem quadrant_problem(int n, std::mt19937_64& rng) {
  TinyProblem p{Tensor::zeros({n, 1, 8, 8}), std::vector<int32_t>(n)};
  for (int i = 0; i < n; ++i) {
    p.y[i] = i % 4;
    int oy = (p.y[i] / 2) * 4 + static_cast<int>(rng() % 2), ox = (p.y[i] % 2) * 4 + static_cast<int>(rng() % 2);
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) p.x.data()[i * 64 + (oy + a) * 8 + ox + b] = 1.f;
  }
  return p;
}

// conv 3x3 (8) + BN + ReLU + max pool 2 + flatten + linear (4 classes).
inline std::shared_ptr<nn::Sequential> tiny_cnn(std::mt19937_64& rng) {
  using namespace nn;
  return std::make_shared<Sequential>(std::vector<ModulePtr>{
      std::make_shared<Conv2d>(Conv2dOptions{1, 8, 3, 1, 1}, rng), std::make_shared<BatchNorm2d>(8),
      std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2, 2, 0), std::make_shared<Flatten>(),
      std::make_shared<Linear>(8 * 16, 4, true, rng)});
}

}  // namespace qforge::testing
