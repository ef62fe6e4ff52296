// Winograd F(4x4, 3x3) for the 3x3 stride-1 padding-1 convolutions that make
// up most of a ResNet: each 4x4 output tile costs 36 multiplies per channel
// pair instead of 144, so the matrix products shrink up to 4x. The input and
// the filter are transformed into 36 "frequency" planes, multiplied plane by
// plane with sgemm, and transformed back (Lavin & Gray, 2015).
// Backward: dX is itself a 3x3 stride-1 convolution (of dY with the filter
// flipped and transposed) and runs the forward path; dW runs the adjoint of
// the output and filter transforms around products of the transformed output
// gradient with the transformed input.
#pragma once
#include "core/ops/conv2d.h"

namespace qforge {

// The transforms are the selected level's (core/kernels/dispatch.h:
// winograd_blocks_for; tests compare every level's with the reference).

// 3x3 kernel, stride 1, padding 1, no dilation, one group, and enough 4x4
// output tiles over the batch for the products to pay for the transforms.
bool winograd_applies(const Conv2dShape& s);

// out (N,OC,H,W) is written (no bias). chunk_images: images transformed at
// once (0 = chosen from the sizes; tests set it to cover the chunking).
void winograd_forward(float* out, const float* inp, const float* weight, const Conv2dShape& s, int chunk_images = 0);

// Adds into dinp and dweight (either may be null).
void winograd_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const Conv2dShape& s, int chunk_images = 0);

}  // namespace qforge
