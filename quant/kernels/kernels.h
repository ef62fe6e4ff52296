// int8 kernels: leaves (raw pointers, POD arguments, no allocation, no threads).
//
// Most code should not call these: quant/kernels/drivers.h packs weights and
// splits work over the thread pool, and quant/kernels/dispatch.h picks the
// ISA. Here is what every kernel computes, with the layouts:
//
//   activations  uint8, NHWC, per-tensor (scale, zero point)
//   weights      int8 per output channel, symmetric; accepted range [-128, 127]
//   accumulate   int32, wrapping (as the hardware does; real models stay far below 2^31)
//   output       requantize(acc, multiplier[oc], out_zp, out_qmin, out_qmax)  (quant/qparams.h)
//
// Every kernel has a scalar `__ref` version that defines the output bytes;
// each SIMD version (`__avx2`, `__avx512`, `__avx512vnni`: the level of
// core/cpu.h whose flags the file is compiled with) must produce the same bytes.
// A SIMD file holds only its ISA's code and never calls an inline function
// shared with generic code (one copy of such a function would be picked by
// the linker, possibly the one compiled with AVX-512).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/conv_geometry.h"
#include "quant/qparams.h"

namespace qforge::quant {

// ---------------------------------------------------------------------------
// Add: each input's offset from its zero point is weighted by its scale
// relative to the output's, as 16-bit fixed-point numbers with `shift`
// fractional bits, summed in int32 and rounded once:
//   acc = (a - a_zp) * a_mul + (b - b_zp) * b_mul     (|acc| < 2^24)
//   out = clamp(((acc + 2^(shift-1)) >> shift) + out_zp, out_qmin, out_qmax)
// a_mul = round(s_a / s_out * 2^shift), with shift as large as keeps both in
// 15 bits: a relative error below 2^-14, far under one output step. One
// vpmaddwd per pair of inputs does both multiplies.
struct QAddParams {
  int32_t a_zp, b_zp;
  int16_t a_mul, b_mul;
  int32_t shift;                       // 1..30
  int32_t out_zp, out_qmin, out_qmax;  // fused ReLU: out_qmin = max(out_qmin, out_zp)
};
// ---------------------------------------------------------------------------
// Convolution (and GEMM: a 1x1 convolution over M "pixels").
//
// The SIMD kernels run a direct convolution over NHWC: for each output pixel
// and each tap (kh, kw) the input row of C contiguous channels is one slice of
// the K dimension, reached through an indirection array of row pointers built
// per chunk of pixels (no im2col copy). Padded taps point at `zero_row`, a row
// of in_zp bytes, so padding behaves as real 0 and the zero-point correction
// (in_zp * sum of weights) folds into `bias_packed` at pack time.
// When C is small (stems: C = 1 or 3) the KW taps of one kernel row are merged
// into one slice of KW*C contiguous bytes ("row-merged"): the 7x7 C=3 stem
// runs as 7 taps of 21 bytes instead of 49 taps of 3.
// Each slice of kt bytes is padded to ktp = roundup(kt, 4) with zero weights;
// slices are read ktp bytes long, so a slice that would read past the end of
// the input is copied to scratch first.
// The geometry (stride_h, pad_h, dilation_h, ...; groups is 1 for these kernels, any for
// qconv2d_grouped__ref in qdwconv2d.h) is the inherited ConvGeometry, so
// the kernels read a.stride_h as before; they call none of its functions (SIMD files call no
// inline function shared with generic code), OH and OW come computed.
struct QConvArgs : ConvGeometry {
  // input (N,H,W,C) -> output (N,OH,OW,OC)
  int N, H, W, C;
  int OC, KH, KW, OH, OW;
  int32_t in_zp;
  int32_t out_zp, out_qmin, out_qmax;
  // scalar reference data: acc = bias[oc] + sum (x - in_zp) * w over in-bounds taps
  const int8_t* weight;                 // (OC, KH, KW, C)
  const int32_t* bias;                  // (OC), or null for 0
  const FixedPointMultiplier* requant;  // (OC)
  // SIMD data (OCp = OC rounded up to 16; padded channels have zero weights)
  const void* packed;            // layout per ISA, see pack_conv__*
  const int32_t* bias_packed;    // (OCp) bias - in_zp * sum(w); acc = bias_packed + sum x * w
  const int32_t* rq_multiplier;  // (OCp)
  const int32_t* rq_lshift;      // (OCp) max(shift, 0)
  const int32_t* rq_rshift;      // (OCp) max(-shift, 0)
  const uint8_t* zero_row;       // ktp bytes of in_zp
  int OCp;
  int taps;     // KH*KW, or KH when row-merged
  int kt, ktp;  // bytes per tap slice (C, or KW*C when row-merged), and rounded up to 4
  bool row_merged;
  // For the batch-major kernel (QConv2dPosKernel): (taps, OCp) sum of each tap's weights, or null.
  const int32_t* tap_wsum;
  // Residual join fused into the epilogue (kernels whose KernelTable::conv_fused_add is set; uint8
  // output only): when not null, out = qadd(requantize(acc), residual) with `add`, the conv's
  // output being input a. The reference is qconv2d__ref then qadd__ref.
  const uint8_t* residual;  // (N,OH,OW,OC)
  QAddParams add;
};

// Computes output pixels [pix_begin, pix_end) of the flattened (N*OH*OW) grid
// for output channels [oc_begin, oc_end). oc_begin must be a multiple of the
// ISA's panel width (KernelTable::conv_panel_oc), oc_end too or equal to OC.
// Writes uint8 (out, stride OC) or, when out_i32 is not null, the raw int32
// accumulators instead (out_i32, stride OC; requantization skipped).
// scratch: conv_scratch_bytes(args, mr, chunk_tiles) bytes, 8-byte aligned.
using QConv2dKernel = void (*)(uint8_t* out, int32_t* out_i32, const uint8_t* in, const QConvArgs& a, int64_t pix_begin,
                               int64_t pix_end, int oc_begin, int oc_end, void* scratch);

void qconv2d__ref(uint8_t* out, int32_t* out_i32, const uint8_t* in, const QConvArgs& a, int64_t pix_begin,
                  int64_t pix_end, int oc_begin, int oc_end, void* scratch);
// 4 pixels x 16 channels per micro-tile; u8 and s8 widened to int16, vpmaddwd (no 16-bit saturation).
void qconv2d_4x16__avx2(uint8_t* out, int32_t* out_i32, const uint8_t* in, const QConvArgs& a, int64_t pix_begin,
                        int64_t pix_end, int oc_begin, int oc_end, void* scratch);
// 6 pixels x 64 channels per micro-tile; vpdpbusd.
void qconv2d_6x64__avx512vnni(uint8_t* out, int32_t* out_i32, const uint8_t* in, const QConvArgs& a, int64_t pix_begin,
                              int64_t pix_end, int oc_begin, int oc_end, void* scratch);

// Batch-major: output positions [pos_begin, pos_end) of the OH x OW grid, for all N images,
// channels [oc_begin, oc_end) (panel-aligned as above). A micro-tile holds up to mr images at
// one position, so all its pixels share one window: taps in the padding are skipped and their
// zero-point term (in_zp * tap_wsum) goes into the tile's bias, which is the same integer in
// wrapping int32 arithmetic. No indirection array. Needs !row_merged, kt == ktp and tap_wsum.
// Its reference is qconv2d__ref over the same pixels, then qadd__ref with the residual if any.
// scratch: conv_pos_scratch_bytes(args) bytes, 8-byte aligned.
using QConv2dPosKernel = void (*)(uint8_t* out, const uint8_t* in, const QConvArgs& a, int pos_begin, int pos_end,
                                  int oc_begin, int oc_end, void* scratch);
void qconv2d_pos__avx512vnni(uint8_t* out, const uint8_t* in, const QConvArgs& a, int pos_begin, int pos_end,
                             int oc_begin, int oc_end, void* scratch);
size_t conv_pos_scratch_bytes(const QConvArgs& a);

// Weight packing, once at load time. w: (OC, KH, KW, C) as in QConvArgs::weight.
// AVX-512 VNNI: panels of 64 output channels (the last one 16, 32, 48 or 64 wide, OCp = roundup(OC, 16));
//   panel p (width PW) starts at byte p*64*taps*ktp and holds int8 [taps][ktp/4][PW][4]:
//   element (t, g, o, j) = w[64p + o][tap t][k = 4g + j] (0 where k >= kt or the channel >= OC).
// AVX2: panels of 16 output channels, int16 [taps][ktp/4][4][8][2]: for k-group g, vector v = 2*pair + half,
//   lane i (channel 16p + 8*half + i) holds the pair (w[k = 4g + pair], w[k = 4g + pair + 2]),
//   matching the kernel's split of 4 broadcast input bytes into words (x0, x2) and (x1, x3).
//
// The constants of these layouts. dispatch.cpp asserts its tables' panel widths against them,
// pack_conv__* check the arguments and that their panels tile exactly the bytes pack_conv_bytes__*
// report, and pack_conv_weights checks the packed size: a layout change that breaks the contract
// fails to compile or throws at load instead of computing garbage.
inline constexpr int kConvOcAlign = 16;              // OCp = roundup(OC, kConvOcAlign)
inline constexpr int kConvKGroup = 4;                // ktp = roundup(kt, kConvKGroup): 4 bytes per k-group
inline constexpr int kConvMergedMax = 64;            // a row-merged slice's bytes: KW * C <= this (ktp too)
inline constexpr int kConvPanelOc__avx2 = 16;        // int16 panels of 16 channels
inline constexpr int kConvPanelOc__avx512vnni = 64;  // int8 panels of 64 channels (the last one narrower)
static_assert(kConvMergedMax % kConvKGroup == 0, "a row-merged slice padded to ktp stays within kConvMergedMax");
static_assert(kConvPanelOc__avx2 == kConvOcAlign, "AVX2 packs whole panels: OCp must be a multiple of their width");
static_assert(kConvPanelOc__avx512vnni % kConvOcAlign == 0 && kConvPanelOc__avx512vnni / kConvOcAlign <= 4,
              "an AVX-512 panel is cut to OCp in steps of kConvOcAlign (16, 32, 48 or 64 channels)");
static_assert(2 * 8 * 4 == kConvKGroup * kConvPanelOc__avx2,
              "AVX2: one k-group block is 4 vectors of 8 int16 pairs, kConvKGroup x 16 channels");
// Elements of any packed layout: OCp x taps x ktp (int8 for AVX-512 VNNI, int16 for AVX2).
inline constexpr size_t conv_packed_elems(int OCp, int taps, int ktp) { return size_t(OCp) * taps * ktp; }
using ConvPackFn = void (*)(void* dst, const QConvArgs& a);  // reads a.weight
size_t pack_conv_bytes__avx2(const QConvArgs& a);
void pack_conv__avx2(void* dst, const QConvArgs& a);
size_t pack_conv_bytes__avx512vnni(const QConvArgs& a);
void pack_conv__avx512vnni(void* dst, const QConvArgs& a);

// Scratch for one call of a SIMD conv kernel working in chunks of chunk_tiles micro-tiles of mr pixels.
size_t conv_scratch_bytes(const QConvArgs& a, int mr, int chunk_tiles);
// off[t]: where tap t's slice starts, relative to the window's first slice (taps entries).
void conv_tap_offsets(int64_t* off, const QConvArgs& a);
// For the npix pixels from p0, in micro-tiles of mr pixels: a full tile whose pixels lie in one
// output row with every window inside the image is "direct": tile_base[tile] is its first pixel's
// first slice, pixel i's tap t slice is tile_base + i * stride_w * C + off[t]. Any other tile gets
// tile_base[tile] = null and its slice pointers in ind[(tile*taps + t)*mr + i] (the last tile padded
// with its last pixel). Every slice is readable for a.ktp bytes: slices that are not (image borders
// when row-merged, the end of the input) are assembled in seg. Generic code, shared by the SIMD
// conv kernels.
void build_conv_indirection(const uint8_t** ind, const uint8_t** tile_base, uint8_t* seg, const uint8_t* in,
                            const QConvArgs& a, int64_t p0, int npix, int mr);

// out (n), a (n), b (n)
using QAddKernel = void (*)(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p);
void qadd__ref(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p);
void qadd__avx2(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p);
void qadd__avx512(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p);

// ---------------------------------------------------------------------------
// Max pooling, NHWC; padded positions are ignored (need pad <= kernel / 2).
// Output keeps the input's (scale, zero point).
struct QPool2dParams {
  int N, H, W, C;
  int KH, KW, stride_h, stride_w, pad_h, pad_w;
  int OH, OW;
};
// in (N,H,W,C) -> out (N,OH,OW,C), output pixels [pix_begin, pix_end) of N*OH*OW
using QMaxPool2dKernel = void (*)(uint8_t* out, const uint8_t* in, const QPool2dParams& p, int64_t pix_begin,
                                  int64_t pix_end);
void qmaxpool2d__ref(uint8_t* out, const uint8_t* in, const QPool2dParams& p, int64_t pix_begin, int64_t pix_end);
void qmaxpool2d__avx2(uint8_t* out, const uint8_t* in, const QPool2dParams& p, int64_t pix_begin, int64_t pix_end);
void qmaxpool2d__avx512(uint8_t* out, const uint8_t* in, const QPool2dParams& p, int64_t pix_begin, int64_t pix_end);

// ---------------------------------------------------------------------------
// Global average pooling: out[n][c] = requantize(sum_hw x - H*W*in_zp, multiplier, ...)
// with multiplier = s_in / (s_out * H * W).
struct QGlobalAvgPoolParams {
  int N, H, W, C;
  int32_t in_zp;
  // acc = (sum - H*W*in_zp) << pre_shift, then requantized: the shift keeps the fixed-point
  // multiply from rounding twice on small sums (a 2x2 map sums 4 values).
  int32_t pre_shift;
  FixedPointMultiplier multiplier;
  int32_t out_zp, out_qmin, out_qmax;
};
// in (N,H,W,C) -> out (N,C), images [n_begin, n_end)
using QGlobalAvgPoolKernel = void (*)(uint8_t* out, const uint8_t* in, const QGlobalAvgPoolParams& p, int64_t n_begin,
                                      int64_t n_end);
void qglobal_avgpool__ref(uint8_t* out, const uint8_t* in, const QGlobalAvgPoolParams& p, int64_t n_begin,
                          int64_t n_end);
void qglobal_avgpool__avx2(uint8_t* out, const uint8_t* in, const QGlobalAvgPoolParams& p, int64_t n_begin,
                           int64_t n_end);
void qglobal_avgpool__avx512(uint8_t* out, const uint8_t* in, const QGlobalAvgPoolParams& p, int64_t n_begin,
                             int64_t n_end);

// ---------------------------------------------------------------------------
// Quantize float NCHW -> uint8 NHWC with quantize_val (inv_scale = 1.0f / scale, in float),
// and Dequantize uint8 NHWC -> float NCHW: (q - zp) * scale. H = W = 1 gives plain (N, C) arrays.
struct QuantizeParams {
  int N, C, HW;
  float scale, inv_scale;
  int32_t zp, qmin, qmax;
};
// pixels [pix_begin, pix_end) of N*HW
using QuantizeKernel = void (*)(uint8_t* out, const float* in, const QuantizeParams& p, int64_t pix_begin,
                                int64_t pix_end);
void quantize__ref(uint8_t* out, const float* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end);
void quantize__avx2(uint8_t* out, const float* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end);
void quantize__avx512(uint8_t* out, const float* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end);
using DequantizeKernel = void (*)(float* out, const uint8_t* in, const QuantizeParams& p, int64_t pix_begin,
                                  int64_t pix_end);
void dequantize__ref(float* out, const uint8_t* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end);
void dequantize__avx2(float* out, const uint8_t* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end);
void dequantize__avx512(float* out, const uint8_t* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end);

}  // namespace qforge::quant
