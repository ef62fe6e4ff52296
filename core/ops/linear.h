// Fully connected layer through sgemm.
#pragma once
#include "core/tensor.h"

namespace qforge {

// The raw pair.
// x (N,IN), weight (OUT,IN), bias (OUT) or null -> out (N,OUT)
void linear_forward(float* out, const float* x, const float* weight, const float* bias, int n, int in, int outf);
// Adds into dx (N,IN), dweight (OUT,IN), dbias (OUT), each may be null; the caller zeroes them.
// dout (N,OUT); x is read only for dweight, weight only for dx.
void linear_backward(float* dx, float* dweight, float* dbias, const float* dout, const float* x, const float* weight,
                     int n, int in, int outf);

// The autograd op.

// x (N,IN), weight (OUT,IN), bias (OUT) or undefined -> (N,OUT)
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace qforge
