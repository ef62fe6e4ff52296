// Dropout (inverted, as torch.nn.functional.dropout): in training each element
// is kept with probability 1 - p and scaled by 1 / (1 - p), so evaluation is the
// identity. The mask comes from a caller-owned generator, so a run that seeds it
// the same way drops the same elements.
//
//   std::mt19937_64 rng(seed);
//   Tensor y = dropout(x, 0.2f, rng);  // training only; in eval mode skip the call
#pragma once
#include <cstdint>
#include <random>

#include "core/tensor.h"

namespace qforge {

// inp (n) -> out (n), mask (n): mask[i] = 1 with probability 1 - p, else 0 (drawn
// from rng, one draw per element, in order); out = inp * mask / (1 - p). p = 1
// drops everything (out = 0).
void dropout_forward(float* out, uint8_t* mask, const float* inp, int64_t n, float p, std::mt19937_64& rng);
// Adds into dinp; the caller zeroes it.
// out = inp * mask / (1 - p)  =>  dinp += dout * mask / (1 - p)
void dropout_backward(float* dinp, const float* dout, const uint8_t* mask, int64_t n, float p);

// The autograd op: draws the mask, keeps it for backward. 0 <= p <= 1.
Tensor dropout(const Tensor& x, float p, std::mt19937_64& rng);

}  // namespace qforge
