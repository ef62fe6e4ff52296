// The per-plane kernels of the depthwise convolution (depthwise.h), one table
// per instruction set. A kernel handles one channel plane of one image, no
// threads, no allocation; depthwise.cpp splits the planes over the pool.
//
// Every table runs the same source (depthwise_rows.h) compiled with its own
// ISA flags and -ffp-contract=off, vectorised only along a row: each output
// element sees the same operations in the same order, so all tables give the
// same bits (tests/core/test_depthwise.cpp checks it).
#pragma once

namespace qforge::depthwise_detail {

// One plane's geometry: input h x w, output oh x ow, kernel kh x kw, strides,
// padding and dilation.
struct PlaneGeo {
  int h, w, oh, ow;
  int kh, kw, sh, sw, ph, pw, dh, dw;
};

struct DepthwiseKernels {
  const char* name;
  // out (OH,OW) = bias + correlation of in (H,W) with w (KH,KW) under the
  // geometry. zeros: at least max(H, W, OH, OW) + 16 zero floats.
  void (*forward)(float* out, const float* in, const float* w, float bias, const PlaneGeo& g, const float* zeros);
  // dinp (H,W) += the transposed correlation of dout (OH,OW) with w (KH,KW).
  void (*backward_input)(float* dinp, const float* dout, const float* w, const PlaneGeo& g, const float* zeros);
  // sums[t] = sum over the plane of dout * the input under tap t (t < KH*KW,
  // row-major); sums[KH*KW] = sum of dout. Written, not added.
  void (*backward_weight)(float* sums, const float* dout, const float* in, const PlaneGeo& g, const float* zeros);
};

extern const DepthwiseKernels kDepthwisePortable;  // the x86-64 baseline (SSE2)
extern const DepthwiseKernels kDepthwiseAvx2;      // -mavx2 -mfma
extern const DepthwiseKernels kDepthwiseAvx512;    // -mavx512f/bw/dq/vl, 512-bit vectors

// The table this CPU runs: the one place the instruction set is chosen.
const DepthwiseKernels& depthwise_kernels();

}  // namespace qforge::depthwise_detail

namespace qforge {
struct Conv2dShape;
}

namespace qforge::depthwise_detail {

// depthwise_forward and depthwise_backward with a given table (tests compare the tables).
void forward_with(const DepthwiseKernels& k, float* out, const float* inp, const float* weight, const float* bias,
                  const Conv2dShape& s);
void backward_with(const DepthwiseKernels& k, float* dinp, float* dweight, float* dbias, const float* dout,
                   const float* inp, const float* weight, const Conv2dShape& s);

}  // namespace qforge::depthwise_detail
