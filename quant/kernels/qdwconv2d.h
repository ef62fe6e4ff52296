// int8 depthwise 3x3 convolution (MobileNet) and the generic grouped-convolution reference: leaves
// (raw pointers, POD arguments, no allocation, no threads), under the contract of kernels.h:
// uint8 NHWC activations per-tensor affine, int8 per-channel symmetric weights, int32 bias,
// wrapping int32 accumulation, requantize() from quant/qparams.h; every SIMD version produces
// the bytes of its `__ref`.
//
// Kept apart from kernels.h (one concept per file); the kernel tables (dispatch.h) hold the
// depthwise kernel and packer per level, quant/kernels/drivers.h runs both kernels.
#pragma once
#include <cstddef>
#include <cstdint>

#include "quant/kernels/kernels.h"  // QConvArgs (the grouped reference)
#include "quant/qparams.h"

namespace qforge::quant {

// ---------------------------------------------------------------------------
// Depthwise 3x3: out[n][oh][ow][c] = requantize(bias[c] + sum over in-bounds taps (kh, kw) of
//   (x[n][oh*stride - pad + kh][ow*stride - pad + kw][c] - in_zp) * w[kh][kw][c], requant[c], ...)
// Taps in the padding contribute 0 (as an input equal to in_zp).
//
// How the SIMD kernels get there: a padded tap reads `zero_row` (in_zp bytes), so every output
// pixel sums all 9 taps of raw bytes, and the zero-point term -in_zp * sum(w) is one constant per
// channel folded into `bias_packed` (equal to the reference in wrapping int32 arithmetic). Inputs
// are widened to int16 and two taps are interleaved per int32 lane, so one vpmaddwd / vpdpwssd
// adds two taps' products of a channel (exact: 2 * 255 * 128 < 2^31).
//
// Geometry: KH = KW = 3; stride 1 or 2 (any stride >= 1 works); pad >= 0 (any).
// OH = (H + 2*pad - 3) / stride + 1, OW likewise, both >= 1.
struct QDwConvArgs {
  int N, H, W, C;
  int OH, OW;
  int stride, pad;
  int32_t in_zp;
  int32_t out_zp, out_qmin, out_qmax;  // fused ReLU/ReLU6: clamp [out_qmin, out_qmax] within [0, 255]
  // scalar reference data
  const int8_t* weight;                 // (3, 3, C): a tap is C contiguous channels
  const int32_t* bias;                  // (C), or null for 0
  const FixedPointMultiplier* requant;  // (C)
  // SIMD data, see pack_dwconv_3x3 (Cp = dwconv_padded_channels(C); entries >= C are 0)
  const void* packed;            // weights, layout per ISA (pack_dwconv_3x3__*)
  const int32_t* bias_packed;    // (Cp) bias - in_zp * sum of the channel's 9 weights (wrapping)
  const int32_t* rq_multiplier;  // (Cp)
  const int32_t* rq_lshift;      // (Cp) max(shift, 0)
  const int32_t* rq_rshift;      // (Cp) max(-shift, 0)
  const uint8_t* zero_row;       // (Cp) bytes equal to in_zp
};

// Cp: C rounded up to 32 (both SIMD kernels read whole vectors of the per-channel arrays).
inline int dwconv_padded_channels(int C) { return (C + 31) / 32 * 32; }

// Computes the output rows [row_begin, row_end) of the (N*OH) grid: every ow, every channel.
// out (N, OH, OW, C), in (N, H, W, C). Throws (QF_CHECK) only in the reference, on bad geometry.
using QDwConv2dKernel = void (*)(uint8_t* out, const uint8_t* in, const QDwConvArgs& a, int64_t row_begin,
                                 int64_t row_end);
void qdwconv2d_3x3__ref(uint8_t* out, const uint8_t* in, const QDwConvArgs& a, int64_t row_begin, int64_t row_end);
// Blocks of 16 channels (ymm, int16 lanes), vpmaddwd; a last partial block is the 16 channels
// ending at C (overlapping the previous block, same bytes written twice); C < 16 goes through a
// staging copy.
void qdwconv2d_3x3__avx2(uint8_t* out, const uint8_t* in, const QDwConvArgs& a, int64_t row_begin, int64_t row_end);
// Blocks of 32 channels (zmm, int16 lanes), vpdpwssd; the last partial block is masked.
void qdwconv2d_3x3__avx512vnni(uint8_t* out, const uint8_t* in, const QDwConvArgs& a, int64_t row_begin,
                               int64_t row_end);

// Weight packing, once at load time; reads a.weight and a.C only.
// A block of V channels starting at channel c0 is V * 20 bytes: int16 [5 pairs p][2 halves h][V/2 lanes i][2 j]:
//   element (p, h, i, j) = w[tap 2p + j][c0 + (i / 4) * 8 + 4h + i % 4], 0 for tap 9 or a channel >= C,
// where tap = kh * 3 + kw. Half h = 0 holds the channels that vpunpcklwd of two taps' int16 inputs
// places in each 128-bit lane (4 of every 8), h = 1 those of vpunpckhwd.
// AVX2:          V = 16, blocks c0 = 0, 16, ..., and when C % 16 != 0 one more at c0 = max(C - 16, 0).
// AVX-512 VNNI:  V = 32, blocks c0 = 0, 32, ..., the last one zero-padded past C.
size_t pack_dwconv_3x3_bytes__avx2(int C);
void pack_dwconv_3x3__avx2(void* dst, const QDwConvArgs& a);
size_t pack_dwconv_3x3_bytes__avx512vnni(int C);
void pack_dwconv_3x3__avx512vnni(void* dst, const QDwConvArgs& a);
// The per-channel SIMD arrays (each Cp entries, zero past C): bias_packed from a.bias, a.weight and
// a.in_zp; the requant split from a.requant; zero_row (Cp bytes of in_zp).
void pack_dwconv_3x3_channels(int32_t* bias_packed, int32_t* rq_multiplier, int32_t* rq_lshift, int32_t* rq_rshift,
                              uint8_t* zero_row, const QDwConvArgs& a);

// ---------------------------------------------------------------------------
// Grouped convolution, the scalar reference for any group count (1 = ordinary conv, C = depthwise).
// Uses QConvArgs' geometry and reference data, with a.weight (OC, KH, KW, C / groups): output
// channel oc belongs to group g = oc / (OC / groups) and reads input channels
// [g * C/groups, (g+1) * C/groups). C and OC must be multiples of groups. Output pixels
// [pix_begin, pix_end) of N*OH*OW, channels [oc_begin, oc_end); out (stride OC) or, when out_i32
// is not null, the raw accumulators. Same arithmetic as qconv2d__ref (which it equals for groups 1).
void qconv2d_grouped__ref(uint8_t* out, int32_t* out_i32, const uint8_t* in, const QConvArgs& a, int groups,
                          int64_t pix_begin, int64_t pix_end, int oc_begin, int oc_end);

}  // namespace qforge::quant
