// 2-D convolution, NCHW, with stride, padding, dilation and groups
// (groups == C gives a depthwise convolution, run by depthwise.h). im2col + sgemm, batched over
// several images per GEMM so the small spatial sizes deep in a ResNet still
// make large matrix products; 3x3 stride-1 layers use Winograd (winograd.h).
#pragma once
#include <memory>

#include "core/conv_geometry.h"
#include "core/tensor.h"

namespace qforge {

struct Conv2dShape {
  int n, c, h, w;  // input
  int oc, kh, kw;  // weight (OC, C/groups, KH, KW)
  int oh, ow;      // output
  ConvGeometry a;
};

// Checks the shapes and computes the output size (conv_output_size); errors name both shapes.
Conv2dShape conv2d_shape(const Shape& inp, const Shape& weight, const ConvGeometry& a);

// How the products are formed. kAuto takes direct per-plane loops for
// depthwise layers (groups == C > 1: see depthwise.h), Winograd F(4x4,3x3)
// where it applies (3x3, stride 1, padding 1: see winograd.h), else im2col +
// sgemm; kIm2col takes im2col + sgemm for every layer.
enum class ConvAlgo { kAuto, kIm2col };

// Whether kAuto's forward runs a layer with few input channels (at most 8, as a first layer's; one
// group, a kernel wider than 1x1) direct, each output row from the taps of a padded copy of its input
// rows (kernels.h: ConvTapsKernel) instead of im2col's columns: the same bits as im2col where its
// product runs the 6x64 tile (core/blas.cpp: sgemm_route, k x columns up to 2M floats). Exposed for tests.
bool conv2d_direct_taps(const Conv2dShape& s);

// Whether im2col's forward runs image by image in blocks of output rows (an image's column matrix
// past 1 MB and at most 256 rows, as a 7x7 stem's at 224x224: 7 MB), each block's columns
// multiplied while they are in the L2 cache, instead of over whole images. Exposed for tests.
bool conv2d_row_blocked(const Conv2dShape& s);

// A layer's filters prepared once for its inference calls (the Winograd layers' transformed
// filters, the channels-last layers' packed weights: filter_cache.h), owned by the layer
// (nn::Conv2d) and passed to the calls below. Every call first checks that the weights still hold
// the bytes the filters were made from, and remakes them if not, so a write to the weights by any
// route (an optimizer step, a load, data()) is never missed. Calls that record gradients do not use
// it: in training the weights change every step. Where it holds filters a call with it may take
// another path than one without (Winograd from 16 tiles instead of 32, winograd.h:
// winograd_caches; channels-last products at any size, channels_last.h: channels_last_caches), so
// the two can differ in the last bits; calls given the same cache agree bit for bit.
struct ConvFilterCache;
std::shared_ptr<ConvFilterCache> make_conv_filter_cache();
// Frozen, a cache makes its filters from the weights as they are at the first call after freezing,
// and later calls use them without comparing: for models that only run inference (qforge bench,
// eval, predict), as ONNX Runtime's sessions pack their weights once. Writes to the weights after
// freezing are not seen until the cache is frozen again or thawed. Freezing or thawing drops the
// filters.
void freeze_conv_filters(ConvFilterCache& cache, bool frozen);
int64_t conv_filter_cache_bytes(const ConvFilterCache& cache);  // what it holds now

// inp (N,C,H,W), weight (OC,C/groups,KH,KW), bias (OC) or null -> out (N,OC,OH,OW)
void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias, const Conv2dShape& s,
                    ConvAlgo algo = ConvAlgo::kAuto, ConvFilterCache* cache = nullptr);
// Adds into dinp, dweight, dbias (each may be null); the caller zeroes them.
void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const Conv2dShape& s, ConvAlgo algo = ConvAlgo::kAuto);

// The autograd op. b may be undefined (no bias). cache: the layer's, used when no gradient is recorded.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, ConvGeometry args, ConvFilterCache* cache = nullptr);

// Inference (records no history): the convolution, its bias and an activation clamp(v, 0, hi)
// (hi = inf: ReLU, 6: ReLU6) in one pass over the output instead of three, for convolutions with
// BatchNorm folded in (quant::ConvBnAct). The same values as relu(conv2d(x, w, b)) given the same
// cache, bit for bit.
Tensor conv2d_bias_relu(const Tensor& x, const Tensor& w, const Tensor& b, ConvGeometry args, float hi,
                        ConvFilterCache* cache = nullptr);

}  // namespace qforge
