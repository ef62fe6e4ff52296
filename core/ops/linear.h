// Fully connected layer through sgemm.
#pragma once
#include "core/tensor.h"

namespace qforge {

// x (N,IN), weight (OUT,IN), bias (OUT) or undefined -> (N,OUT)
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace qforge
