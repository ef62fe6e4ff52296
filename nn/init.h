// Initialisers, as torchvision's ResNet uses them.
#pragma once
#include <random>

#include "core/tensor.h"

namespace qforge::nn {

// N(0, sqrt(2 / fan_out)), fan_out = OC * KH * KW (kaiming_normal_, mode fan_out, relu).
void kaiming_normal_fan_out(Tensor& w, std::mt19937_64& rng);
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear and Conv2d weights and biases.
void uniform_fan_in(Tensor& t, int64_t fan_in, std::mt19937_64& rng);

}  // namespace qforge::nn
