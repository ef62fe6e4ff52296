// Winograd F(2x2, 3x3) for the 3x3 stride-1 padding-1 convolutions that make
// up most of a ResNet: each 2x2 output tile costs 16 multiplies per channel
// pair instead of 36, so the matrix products shrink 2.25x. The input and the
// filter are transformed into 16 "frequency" planes, multiplied plane by plane
// with sgemm, and transformed back (Lavin & Gray, 2015). Backward runs the
// adjoint of each step: dW from the products of the transformed output
// gradient with the transformed input, dX through the transposed filter.
#pragma once
#include "core/ops/conv2d.h"

namespace qforge {

// The transforms run AVX-512 code where the CPU has it, unless this is false
// (tests compare both, bit for bit).
extern bool winograd_simd_enabled;

// 3x3 kernel, stride 1, padding 1, no dilation, one group, and at least 32
// tiles of 2x2 outputs over the batch.
bool winograd_applies(const Conv2dShape& s);

// out (N,OC,H,W) is written (no bias). chunk_images: images transformed at
// once (0 = chosen from the sizes; tests set it to cover the chunking).
void winograd_forward(float* out, const float* inp, const float* weight, const Conv2dShape& s,
                      int chunk_images = 0);

// Adds into dinp and dweight (either may be null).
void winograd_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const Conv2dShape& s, int chunk_images = 0);

}  // namespace qforge
