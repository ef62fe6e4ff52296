// Depthwise 3x3 convolution for AVX-512 VNNI: one output pixel x 32 channels at a time.
//
// Each tap's 32 input bytes widen to int16 (vpmovzxbw); two taps interleave (vpunpck{l,h}wd) into
// int32 lanes of (x_a, x_b) pairs that meet the packed weight pairs (w_a, w_b) in vpdpwssd: 5
// vpdpwssd per 16 lanes cover the 9 taps (the tenth tap has zero weights). The interleave puts
// channels 0-3, 8-11, 16-19, 24-27 in the "lo" accumulator and 4-7, 12-15, ... in the "hi" one;
// the weights are packed in that order, the per-channel bias and requantization constants are
// shuffled into it once per row and block, and vpackssdw(lo, hi) restores channel order.
// Padded taps read zero_row (in_zp), whose term is in bias_packed; see qdwconv2d.h.
#include <immintrin.h>

#include "quant/kernels/qdwconv2d.h"
#include "quant/kernels/requant__avx512.h"

namespace qforge::quant {
namespace {

using namespace avx512;

constexpr int kV = 32;  // channels per block

struct BlockConsts {
  __m512i w[10];  // [pair p][half h]
  __m512i bias_lo, bias_hi;
  Mul16 m_lo, m_hi;
  __m512i zp, lo, hi;  // int16 lanes: out_zp, out_qmin, out_qmax
};

// Channels [c0, c0 + 32) of a Cp-padded array, split into the lo and hi lane orders.
inline void load_split(const int32_t* p, __m512i& lo, __m512i& hi) {
  const __m512i a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 16);
  lo = _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  hi = _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1));
}

inline BlockConsts block_consts(const QDwConvArgs& a, int block, int c0) {
  BlockConsts k;
  const int16_t* w = static_cast<const int16_t*>(a.packed) + size_t(block) * kV * 10;
#pragma GCC unroll 10
  for (int i = 0; i < 10; ++i) k.w[i] = _mm512_loadu_si512(w + i * kV);
  load_split(a.bias_packed + c0, k.bias_lo, k.bias_hi);
  __m512i m_lo, m_hi, l_lo, l_hi, r_lo, r_hi;
  load_split(a.rq_multiplier + c0, m_lo, m_hi);
  load_split(a.rq_lshift + c0, l_lo, l_hi);
  load_split(a.rq_rshift + c0, r_lo, r_hi);
  k.m_lo = make_mul16(m_lo, l_lo, r_lo);
  k.m_hi = make_mul16(m_hi, l_hi, r_hi);
  k.zp = _mm512_set1_epi16(static_cast<int16_t>(a.out_zp));
  k.lo = _mm512_set1_epi16(static_cast<int16_t>(a.out_qmin));
  k.hi = _mm512_set1_epi16(static_cast<int16_t>(a.out_qmax));
  return k;
}

template <bool MASKED>
inline __m512i load_x(const uint8_t* p, __mmask32 m) {
  if constexpr (MASKED)
    return _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, p));
  else
    return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// The 32 sums of one output pixel (lo and hi lane orders) requantized and stored as bytes.
template <bool MASKED>
inline void finish(__m512i lo, __m512i hi, const BlockConsts& k, __mmask32 m, uint8_t* o) {
  // requantize's zero point and clamp, on int16 lanes in channel order: vpackssdw saturates q to
  // [-2^15, 2^15), vpaddsw saturates q + zp, and the clamp to [qmin, qmax] (within [0, 255]) gives
  // the value clamp(q + zp) has in exact integers either way.
  __m512i v = _mm512_packs_epi32(mul16(lo, k.m_lo), mul16(hi, k.m_hi));
  v = _mm512_min_epi16(_mm512_max_epi16(_mm512_adds_epi16(v, k.zp), k.lo), k.hi);
  const __m256i bytes = _mm512_cvtepi16_epi8(v);
  if constexpr (MASKED)
    _mm256_mask_storeu_epi8(o, m, bytes);
  else
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), bytes);
}

// One output pixel, 32 channels: t[tap] points at the tap's first channel of the block.
template <bool MASKED>
inline void pixel(const uint8_t* const* t, const BlockConsts& k, __mmask32 m, uint8_t* o) {
  __m512i lo = k.bias_lo, hi = k.bias_hi;
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p) {
    const __m512i xa = load_x<MASKED>(t[2 * p], m), xb = load_x<MASKED>(t[2 * p + 1], m);
    lo = _mm512_dpwssd_epi32(lo, _mm512_unpacklo_epi16(xa, xb), k.w[2 * p]);
    hi = _mm512_dpwssd_epi32(hi, _mm512_unpackhi_epi16(xa, xb), k.w[2 * p + 1]);
  }
  const __m512i x8 = load_x<MASKED>(t[8], m), zero = _mm512_setzero_si512();
  lo = _mm512_dpwssd_epi32(lo, _mm512_unpacklo_epi16(x8, zero), k.w[8]);
  hi = _mm512_dpwssd_epi32(hi, _mm512_unpackhi_epi16(x8, zero), k.w[9]);
  finish<MASKED>(lo, hi, k, m, o);
}

// The weights paired by rows for stride 1: for column kw, (w[0][kw], w[1][kw]) and (w[2][kw], 0)
// per int32 lane, in the lo and hi lane orders, taken from the packed tap pairs.
struct RowPairs {
  __m512i w01[3][2], w2[3][2];
};

inline RowPairs row_pairs(const BlockConsts& k) {
  // Tap t's weights in the low 16 bits of each int32 lane, zero above.
  auto tap = [&](int t, int h) {
    const __m512i v = k.w[2 * (t / 2) + h];
    return t % 2 == 0 ? _mm512_and_si512(v, _mm512_set1_epi32(0xFFFF)) : _mm512_srli_epi32(v, 16);
  };
  RowPairs r;
  for (int kw = 0; kw < 3; ++kw)
    for (int h = 0; h < 2; ++h) {
      r.w01[kw][h] = _mm512_or_si512(tap(kw, h), _mm512_slli_epi32(tap(3 + kw, h), 16));
      r.w2[kw][h] = tap(6 + kw, h);
    }
  return r;
}

// One input column of the three rows, widened and interleaved once for the three outputs that read
// it at stride 1: rows 0 and 1 as pairs, row 2 with zeros, in the lo and hi lane orders.
struct Column {
  __m512i p_lo, p_hi, z_lo, z_hi;
};

inline Column column(const uint8_t* const* base, const int64_t* cstep, int c0, int iw) {
  const __m512i x0 = load_x<false>(base[0] + iw * cstep[0] + c0, 0);
  const __m512i x1 = load_x<false>(base[1] + iw * cstep[1] + c0, 0);
  const __m512i x2 = load_x<false>(base[2] + iw * cstep[2] + c0, 0), zero = _mm512_setzero_si512();
  return {_mm512_unpacklo_epi16(x0, x1), _mm512_unpackhi_epi16(x0, x1), _mm512_unpacklo_epi16(x2, zero),
          _mm512_unpackhi_epi16(x2, zero)};
}

inline void add_column(__m512i& lo, __m512i& hi, const Column& c, const RowPairs& r, int kw) {
  lo = _mm512_dpwssd_epi32(lo, c.p_lo, r.w01[kw][0]);
  hi = _mm512_dpwssd_epi32(hi, c.p_hi, r.w01[kw][1]);
  lo = _mm512_dpwssd_epi32(lo, c.z_lo, r.w2[kw][0]);
  hi = _mm512_dpwssd_epi32(hi, c.z_hi, r.w2[kw][1]);
}

// Stride 1, a full block, output pixels [ow_begin, ow_end) whose taps are all inside the row: each
// input column is loaded and interleaved once instead of three times (3 loads, 4 unpacks and 12
// vpdpwssd per pixel, against 9, 10 and 10). The sums are the same integers in another order.
inline void run_s1(const QDwConvArgs& a, const uint8_t* const* base, const int64_t* cstep, const BlockConsts& k,
                   const RowPairs& r, int c0, int ow_begin, int ow_end, uint8_t* orow) {
  if (ow_begin >= ow_end) return;
  Column c_0 = column(base, cstep, c0, ow_begin - a.pad), c_1 = column(base, cstep, c0, ow_begin - a.pad + 1);
  for (int ow = ow_begin; ow < ow_end; ++ow) {
    const Column c_2 = column(base, cstep, c0, ow - a.pad + 2);
    __m512i lo = k.bias_lo, hi = k.bias_hi;
    add_column(lo, hi, c_0, r, 0);
    add_column(lo, hi, c_1, r, 1);
    add_column(lo, hi, c_2, r, 2);
    finish<false>(lo, hi, k, 0, orow + int64_t(ow) * a.C + c0);
    c_0 = c_1;
    c_1 = c_2;
  }
}

// Output pixels [ow_begin, ow_end) of one row, one block. BORDER: some taps may fall left or
// right of the image (checked per tap); otherwise every column is inside. base[kh]: the input
// row (or zero_row when the row is padding), cstep[kh]: C (or 0 for zero_row).
template <bool MASKED, bool BORDER>
inline void run(const QDwConvArgs& a, const uint8_t* const* base, const int64_t* cstep, const uint8_t* zero,
                const BlockConsts& k, __mmask32 m, int c0, int ow_begin, int ow_end, uint8_t* orow) {
  const int s = a.stride, C = a.C;
  for (int ow = ow_begin; ow < ow_end; ++ow) {
    const uint8_t* t[9];
    const int iw0 = ow * s - a.pad;
#pragma GCC unroll 3
    for (int kh = 0; kh < 3; ++kh)
#pragma GCC unroll 3
      for (int kw = 0; kw < 3; ++kw) {
        const int iw = iw0 + kw;
        if (BORDER && (iw < 0 || iw >= a.W))
          t[kh * 3 + kw] = zero;
        else
          t[kh * 3 + kw] = base[kh] + iw * cstep[kh] + c0;
      }
    pixel<MASKED>(t, k, m, orow + int64_t(ow) * C + c0);
  }
}

}  // namespace

void qdwconv2d_3x3__avx512vnni(uint8_t* out, const uint8_t* in, const QDwConvArgs& a, int64_t row_begin,
                               int64_t row_end) {
  const int C = a.C, s = a.stride, nb = (C + kV - 1) / kV;
  // Interior columns: every tap column inside [0, W).
  int ow_lo = (a.pad + s - 1) / s, ow_hi = a.W - 3 + a.pad >= 0 ? (a.W - 3 + a.pad) / s + 1 : 0;
  ow_lo = ow_lo < a.OW ? ow_lo : a.OW;
  ow_hi = ow_hi < a.OW ? ow_hi : a.OW;
  ow_hi = ow_hi > ow_lo ? ow_hi : ow_lo;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / a.OH;
    const int oh = static_cast<int>(r % a.OH);
    const uint8_t* base[3];
    int64_t cstep[3];
    for (int kh = 0; kh < 3; ++kh) {
      const int ih = oh * s - a.pad + kh;
      const bool valid = ih >= 0 && ih < a.H;
      base[kh] = valid ? in + (n * a.H + ih) * a.W * C : a.zero_row;
      cstep[kh] = valid ? C : 0;
    }
    uint8_t* orow = out + r * a.OW * C;
    for (int b = 0; b < nb; ++b) {
      const int c0 = b * kV;
      const BlockConsts k = block_consts(a, b, c0);
      const uint8_t* zero = a.zero_row + c0;
      if (c0 + kV <= C) {
        run<false, true>(a, base, cstep, zero, k, 0, c0, 0, ow_lo, orow);
        if (s == 1)
          run_s1(a, base, cstep, k, row_pairs(k), c0, ow_lo, ow_hi, orow);
        else
          run<false, false>(a, base, cstep, zero, k, 0, c0, ow_lo, ow_hi, orow);
        run<false, true>(a, base, cstep, zero, k, 0, c0, ow_hi, a.OW, orow);
      } else {
        const __mmask32 m = _cvtu32_mask32((1u << (C - c0)) - 1u);
        run<true, true>(a, base, cstep, zero, k, m, c0, 0, a.OW, orow);
      }
    }
  }
}

}  // namespace qforge::quant
