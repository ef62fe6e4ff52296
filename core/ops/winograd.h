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

#include "core/kernels/kernels.h"  // ChannelFinish
#include "core/ops/conv2d.h"
#include "core/ops/filter_cache.h"
#include "core/ops/scratch.h"

namespace qforge {

// The transforms are the selected level's (core/kernels/dispatch.h:
// winograd_blocks_for; tests compare every level's with the reference).

// 3x3 kernel, stride 1, padding 1, no dilation, one group, and enough 4x4
// output tiles over the batch for the products to pay for the transforms
// (fewer when the transformed filters come from a cache: cached_filters, see winograd_caches).
bool winograd_applies(const Conv2dShape& s, bool cached_filters = false);

// Whether a layer's transformed filters are kept in a cache: where a call has fewer than 32 tiles
// (their transform is then a large part of it) and they take up to 16 MB (ResNet's 256x256 layers:
// 9.4 MB; at 512x512, 38 MB, they would be read from memory and compared each call at about the
// cost of transforming them); in a frozen cache (filters made once, never compared), always.
bool winograd_caches(const Conv2dShape& s, bool frozen = false);

// out (N,OC,H,W) is written, finished by fin (the epilogue: bias, clamp; none by default) as it
// is copied back from the transforms. chunk_images: images transformed at once (0 = chosen from
// the sizes; tests set it to cover the chunking). cache: the layer's transformed filters
// (filter_cache.h), reused while the weights are unchanged (null: transformed for this call).
void winograd_forward(float* out, const float* inp, const float* weight, const Conv2dShape& s, int chunk_images = 0,
                      PreparedFilterCache* cache = nullptr, const ChannelFinish& fin = {});

// Adds into dinp and dweight (either may be null).
void winograd_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const Conv2dShape& s, int chunk_images = 0);

}  // namespace qforge
