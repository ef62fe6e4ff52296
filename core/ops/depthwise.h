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
// the CPU has (depthwise_kernels.h) and every instruction set gives the same
// bits, as does every thread count: the weight and bias gradients are summed
// per image plane, then over the batch in a fixed order.
//
// Accuracy against a double-precision reference: within 1e-5 of the sum of
// the absolute values of the terms (float sums of at most KH*KW*M terms per
// output, 16 lane-wise partial sums per plane for the weight gradients, then
// a double sum over the batch); tests/core/test_depthwise.cpp checks it.
#pragma once
#include "core/ops/conv2d.h"

namespace qforge {

// groups == C and more than one channel. (A one-channel convolution is also
// "depthwise" but stays on conv2d's usual path, Winograd or im2col.)
bool depthwise_applies(const Conv2dShape& s);

// inp (N,C,H,W), weight (C*M,1,KH,KW), bias (C*M) or null -> out (N,C*M,OH,OW)
void depthwise_forward(float* out, const float* inp, const float* weight, const float* bias, const Conv2dShape& s);

// Adds into dinp (N,C,H,W), dweight (C*M,1,KH,KW), dbias (C*M); each may be null.
// forward: out[n][cM+m][y][x] = bias[cM+m] + sum_{ky,kx} weight[cM+m][ky][kx] * inp[n][c][y*sh-ph+ky*dh][x*sw-pw+kx*dw]
void depthwise_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const Conv2dShape& s);

}  // namespace qforge
