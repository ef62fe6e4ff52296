// Channels-last (NHWC) copies of NCHW images, and the convolutions that run on them: the
// Winograd transforms (winograd.cpp) and, here, the strided convolutions of a ResNet (its 3x3
// stride-2 layers; the 1x1 stride-2 downsamples were faster on NCHW's im2col) and, in inference
// with a layer's cache, any convolution it can run (a ResNet's 7x7 layers at batch 1). On
// channels-last copies im2col is a copy of whole pixels (C consecutive floats per tap) and the
// products have the pixels as rows and the output channels as columns, the shape qforge's GEMM
// tile runs best, with the weights packed in its panels; NCHW's im2col gathers every second float
// there.
#pragma once
#include <cstdint>

#include "core/kernels/kernels.h"  // ChannelFinish
#include "core/ops/conv2d.h"
#include "core/ops/filter_cache.h"
#include "core/ops/scratch.h"

namespace qforge {

// Channels rounded up to a multiple of 16, as the channels-last copies hold them.
inline int channel_lanes(int c) { return (c + 15) / 16 * 16; }

// Where a chunk of images sits in a channels-last buffer: image i's pixel (y, x), channel c at
// ((i * ph + y + top) * pw + x + left) * channel_lanes(C) + c. Rows and columns around the image
// (the frame) are not written by to_channels_last.
struct ChannelsLastFrame {
  int ph, pw;     // rows and columns per image
  int top, left;  // where the image's pixel (0, 0) sits
  int64_t offset(int64_t img, int y, int x, int cp) const {
    return ((img * ph + y + top) * pw + x + left) * cp;
  }
};

// Channels past c are written as zeros, so the rounded channels can be read as a whole.
// x: the chunk's first image (nb images of (c, h, w)).
void to_channels_last(float* xl, const ChannelsLastFrame& f, const float* x, int nb, int c, int h, int w);

// out (nb images of (c, h, w)) = (or +=, accumulating) the channels-last yl; not accumulating,
// finished (fin: a convolution's bias and clamp, channel by channel).
void from_channels_last(float* out, const float* yl, const ChannelsLastFrame& f, int nb, int c, int h, int w,
                        bool accumulate, const ChannelFinish& fin = {});

// The same copies of rows [y0, y1) of image img alone (x, out: the chunk's first image), on the
// calling thread.
void to_channels_last_rows(float* xl, const ChannelsLastFrame& f, const float* x, int64_t img, int c, int h, int w,
                           int y0, int y1);
void from_channels_last_rows(float* out, const float* yl, const ChannelsLastFrame& f, int64_t img, int c, int h, int w,
                             int y0, int y1, bool accumulate, const ChannelFinish& fin = {});

// Whether channels_last_forward can run the convolution: one group, input and output channels
// multiples of 16, a kernel wider than 1x1, qforge's GEMM tile (level avx512) and QFORGE_WINOGRAD
// not off (which asks for im2col everywhere). Inference calls with the layer's cache then run
// there whatever the size (channels_last_caches), with the weights packed once.
bool channels_last_runs(const Conv2dShape& s);
bool channels_last_caches(const Conv2dShape& s);

// Whether the convolution runs on channels-last copies without a cache (training, and the
// calls given none): where it runs, stride 2 or more, and enough output pixels over the batch to
// pay for the copies and for packing the weights.
bool channels_last_applies(const Conv2dShape& s);

// out (N, OC, OH, OW) is written (no bias). Throws unless there is one group and the channels are
// multiples of 16. chunk_images: images per pass (0 = chosen from the sizes; tests set it to cover
// the chunking). cache: the layer's packed weights (filter_cache.h), reused while the weights are
// unchanged (null: packed for this call).
// fin: the epilogue, done as the output is copied back (null bias and no relu: none).
void channels_last_forward(float* out, const float* inp, const float* weight, const Conv2dShape& s,
                           int chunk_images = 0, PreparedFilterCache* cache = nullptr, const ChannelFinish& fin = {});

// Adds into dinp and dweight (either may be null).
void channels_last_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                            const Conv2dShape& s, int chunk_images = 0);

}  // namespace qforge
