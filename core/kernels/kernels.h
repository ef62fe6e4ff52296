// core's float kernels. The contract is quant/kernels/'s: one kernel per file,
// named for its types, tile and instruction set (name__ref, name__avx2,
// name__avx512), compiled with that level's flags (the top CMakeLists.txt's
// qforge_isa_flags), chosen only by core/kernels/dispatch.cpp. The __ref
// kernel defines the bits; each SIMD kernel gives the same bits (tests
// compare them level by level).
#pragma once
#include <cstdint>

namespace qforge {

// A convolution's epilogue done by a pass that writes its output anyway (the channels-last copies
// back to NCHW, winograd_f4x4_blocks.h) or by the GEMM tile's stores: each value v of output
// channel i becomes v + bias[i] (bias null: v), or with relu bias_clamp's clamp(v + bias[i], 0, hi)
// (bias null: + 0), the same bits as the separate pass over the output.
struct ChannelFinish {
  const float* bias = nullptr;  // one per channel of the pass, or null
  bool relu = false;
  float hi = 0.f;
  bool any() const { return bias || relu; }
  // The channels from c0 on.
  ChannelFinish from(int64_t c0) const { return {bias ? bias + c0 : nullptr, relu, hi}; }
};

// Float GEMM leaf: C(m,n) = A(m,k) B(k,n), row-major, one block of C on the
// calling thread, no allocation. Every element of C is one chain of fused
// multiply-adds over k, in order, starting from zero. With rows (not null), row i
// of C is then finished as channel i of rows (the convolutions' products with the
// output channels as rows): the bits of the separate pass, in the kernel's stores.
using GemmF32Kernel = void (*)(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                               int64_t ldc, const ChannelFinish* rows);

void gemm_f32__ref(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                   const ChannelFinish* rows);
// Tiles of 6 rows by 64 columns (gemm_f32_6x64__avx512.cpp).
void gemm_f32_6x64__avx512(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                           int64_t ldc, const ChannelFinish* rows);

// Depth-vector float GEMM leaf, for products with few columns and a long k (a deep layer's 7x7
// map at batch 1: 49 columns, k 2304-4608): C(m,n) = A(m,k) Bt(n,k)^T, both operands read along k.
// Element (i, j) is the pairwise sum of 16 chains of fused multiply-adds, chain l over the
// p = l, l + 16, ... in order from zero: s[l] + s[l + 8] for l < 8, then l + 4, l + 2, l + 1.
using GemmF32DotKernel = void (*)(int m, int n, int k, const float* a, int64_t lda, const float* bt, int64_t ldbt,
                                  float* c, int64_t ldc);

void gemm_f32_dot__ref(int m, int n, int k, const float* a, int64_t lda, const float* bt, int64_t ldbt, float* c,
                       int64_t ldc);
// Tiles of 4 rows of A by 6 rows of Bt (gemm_f32_dot_4x6__avx512.cpp).
void gemm_f32_dot_4x6__avx512(int m, int n, int k, const float* a, int64_t lda, const float* bt, int64_t ldbt, float* c,
                              int64_t ldc);

// Direct convolution of a layer with few input channels (a first layer's 1 to 3), one output
// row at a time: out[o * ldo + p] for o < oc, p < n is one chain of fused multiply-adds over the
// taps t < taps, in order, from zero: w[t * oc + o] * x[off[t] + p]. The taps are the layer's
// (channel, kh, kw) in im2col's order, so the sums are the 6x64 GEMM's on im2col's columns, bit for
// bit. x: a padded copy in which a SIMD kernel may read, and ignore, the floats up to
// off[t] + n rounded up to a multiple of 16 (8 at avx2).
using ConvTapsKernel = void (*)(int oc, int n, int taps, const float* x, const int64_t* off, const float* w, float* out,
                                int64_t ldo);

void conv_taps_f32__ref(int oc, int n, int taps, const float* x, const int64_t* off, const float* w, float* out,
                        int64_t ldo);
// Tiles of 4 output channels by 24 outputs of a row (conv_taps_f32_4x24__avx2.cpp).
void conv_taps_f32_4x24__avx2(int oc, int n, int taps, const float* x, const int64_t* off, const float* w, float* out,
                              int64_t ldo);
// Tiles of 6 output channels by 64 outputs of a row (conv_taps_f32_6x64__avx512.cpp).
void conv_taps_f32_6x64__avx512(int oc, int n, int taps, const float* x, const int64_t* off, const float* w, float* out,
                                int64_t ldo);

// A convolution's epilogue with an activation: dst[p] = clamp(src[p] + bias, 0, hi), NaN to 0
// (ReLU: hi = inf, ReLU6: 6), p < n; dst may be src. One source for every level (bias_clamp.inc).
using BiasClampKernel = void (*)(float* dst, const float* src, int64_t n, float bias, float hi);

void bias_clamp__ref(float* dst, const float* src, int64_t n, float bias, float hi);
void bias_clamp__avx2(float* dst, const float* src, int64_t n, float bias, float hi);
void bias_clamp__avx512(float* dst, const float* src, int64_t n, float bias, float hi);

// Max pooling without argmax (an inference's): out (planes, oh, ow) from in (planes, h, w) under
// the geometry, padding never a maximum (each window holds a pixel: pad <= kernel / 2). Each output
// is std::max's chain along its window's columns (first column first) of the chains down each
// column (first row first), over the taps inside the plane. work: 2 * w floats. One source for
// every level (max_pool.inc).
struct MaxPoolGeo {
  int64_t h, w, oh, ow;
  int kh, kw, sh, sw, ph, pw;
};
using MaxPoolKernel = void (*)(float* out, const float* in, int64_t planes, const MaxPoolGeo& g, float* work);

void max_pool__ref(float* out, const float* in, int64_t planes, const MaxPoolGeo& g, float* work);
void max_pool__avx2(float* out, const float* in, int64_t planes, const MaxPoolGeo& g, float* work);
void max_pool__avx512(float* out, const float* in, int64_t planes, const MaxPoolGeo& g, float* work);

}  // namespace qforge
