// Elementwise ops and reductions, each with its gradient.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace qforge {

// The raw pairs, all over n elements. Backward adds into its gradients (the
// caller zeroes them), except where it says it writes.
// out = a + b
void add_forward(float* out, const float* a, const float* b, int64_t n);
// da += dout (db likewise)
void add_backward(float* da, const float* dout, int64_t n);
// Masks: one bit per element, little-endian in 64-bit words ((n + 63) / 64 of them).
// out = max(a + b, 0); mask (or null) bit i = out[i] > 0, all backward needs
void add_relu_forward(float* out, uint64_t* mask, const float* a, const float* b, int64_t n);
// Writes dsum = dout where the mask bit is set, else 0: the gradient of a + b (dsum may be dout).
void add_relu_backward(float* dsum, const float* dout, const uint64_t* mask, int64_t n);
// out = a * b
void mul_forward(float* out, const float* a, const float* b, int64_t n);
// da += dout * b, db += dout * a; da or db may be null, and then the operand it would read too.
void mul_backward(float* da, float* db, const float* dout, const float* a, const float* b, int64_t n);
// out = a * s
void scale_forward(float* out, const float* a, float s, int64_t n);
void scale_backward(float* da, const float* dout, float s, int64_t n);
// relu()'s and relu6()'s value: clamp(v, 0, hi), NaN to 0. Fused epilogues (conv2d_bias_relu) use it too.
inline float clamp_relu_value(float v, float hi) {
  v = v > 0.f ? v : 0.f;
  return v < hi ? v : hi;
}
// out = clamp(x, 0, hi) (relu: hi = inf, relu6: hi = 6); mask (or null) bit i = 0 < out[i] < hi
void clamp_relu_forward(float* out, uint64_t* mask, const float* x, float hi, int64_t n);
// dx += dout where the mask bit is set; with assign_dx, dx is written instead.
void clamp_relu_backward(float* dx, bool assign_dx, const float* dout, const uint64_t* mask, int64_t n);
// sum of x, in double
float sum_forward(const float* x, int64_t n);
void sum_backward(float* dx, float dout, int64_t n);

// The autograd ops.

Tensor add(const Tensor& a, const Tensor& b);       // same shapes
Tensor add_relu(const Tensor& a, const Tensor& b);  // max(a + b, 0), one pass
Tensor mul(const Tensor& a, const Tensor& b);       // same shapes
Tensor scale(const Tensor& a, float s);
Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor sum(const Tensor& x);   // -> shape (1)
Tensor mean(const Tensor& x);  // -> shape (1)

}  // namespace qforge
