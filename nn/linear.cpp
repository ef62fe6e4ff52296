#include "nn/linear.h"

#include "core/ops/linear.h"
#include "nn/init.h"

namespace qforge::nn {

Linear::Linear(int in, int out, bool has_bias, std::mt19937_64& rng) {
  weight = register_parameter("weight", Tensor::empty({out, in}));
  uniform_fan_in(weight, in, rng);
  if (has_bias) {
    bias = register_parameter("bias", Tensor::empty({out}));
    uniform_fan_in(bias, in, rng);
  }
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

}  // namespace qforge::nn
