#include "nn/batchnorm2d.h"

#include "core/ops/batchnorm.h"

namespace qforge::nn {

BatchNorm2d::BatchNorm2d(int channels, float eps_, float momentum_) : eps(eps_), momentum(momentum_) {
  weight = register_parameter("weight", Tensor::full({channels}, 1.f));
  bias = register_parameter("bias", Tensor::zeros({channels}));
  running_mean = register_buffer("running_mean", Tensor::zeros({channels}));
  running_var = register_buffer("running_var", Tensor::full({channels}, 1.f));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  return batch_norm(x, weight, bias, running_mean, running_var, training_, momentum, eps);
}

}  // namespace qforge::nn
