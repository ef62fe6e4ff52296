// Depthwise 2-D convolution, NCHW: every input channel c is convolved with
// its own M filters (the depth multiplier, usually 1) into output channels
// c*M .. c*M + M - 1. It is conv2d with groups == C (conv2d routes such layers
// here), written as direct loops over each channel plane instead of im2col +
// GEMM: a depthwise layer has one input channel per filter, so a GEMM would
// have K = KH*KW and spend its time copying columns.
//
// Any kernel size, stride, padding and dilation; 3x3 stride 1 and stride 2
// (MobileNetV2's 17 depthwise layers) take vectorised rows. Planes are split
// over the thread pool; the per-plane kernels run the best instruction set
// the CPU has (depthwise_planes.h). Every thread count gives the same bits:
// the weight and bias gradients are summed per image plane, then over the
// batch in image order.
//
// Floats: the kernels are compiled with -ffp-contract=off (no fused
// multiply-adds), so the portable, AVX2 and AVX-512 kernels give identical
// bits. Against a double-precision reference, tests/core/test_depthwise.cpp
// requires every output and gradient within 1e-5 of the sum of the absolute
// values of its terms, on planes up to 112x112. An output sums KH*KW
// products in float, an input gradient KH*KW*M; a weight gradient sums each
// plane in 16 float partial sums (OH*OW/16 products each, 784 at 112x112),
// then the planes of the batch in double.
#pragma once
#include "core/ops/conv2d.h"

namespace qforge {

// groups == C and more than one channel. (A one-channel convolution is also
// "depthwise" but stays on conv2d's usual path, Winograd or im2col.)
bool depthwise_applies(const Conv2dShape& s);

// inp (N,C,H,W), weight (C*M,1,KH,KW), bias (C*M) or null -> out (N,C*M,OH,OW); with relu, each output
// then clamped to [0, hi] while its plane is in cache (conv2d_bias_relu).
void depthwise_forward(float* out, const float* inp, const float* weight, const float* bias, const Conv2dShape& s,
                       bool relu = false, float hi = 0.f);

// Adds into dinp (N,C,H,W), dweight (C*M,1,KH,KW), dbias (C*M); each may be null.
// forward: out[n][cM+m][y][x] = bias[cM+m] + sum_{ky,kx} weight[cM+m][ky][kx] * inp[n][c][y*sh-ph+ky*dh][x*sw-pw+kx*dw]
void depthwise_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const Conv2dShape& s);

}  // namespace qforge
