// Depthwise 3x3 convolution for AVX2: one output pixel x 16 channels at a time.
//
// Each tap's 16 input bytes widen to int16 (vpmovzxbw); two taps interleave (vpunpck{l,h}wd) into
// int32 lanes of (x_a, x_b) pairs that meet the packed weight pairs (w_a, w_b) in vpmaddwd (exact:
// 2 * 255 * 128 < 2^31): 5 per 8 lanes cover the 9 taps (the tenth tap has zero weights). The
// interleave puts channels 0-3, 8-11 in the "lo" accumulator and 4-7, 12-15 in the "hi" one; the
// weights are packed in that order, the per-channel bias and requantization constants are
// permuted into it once per row and block, and vpackssdw(lo, hi) restores channel order.
// C % 16 != 0: the last block is the 16 channels ending at C (it recomputes some channels of the
// previous block, to the same bytes). C < 16: taps are staged through a 16-byte copy.
// Padded taps read zero_row (in_zp), whose term is in bias_packed; see qdwconv2d.h.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/qdwconv2d.h"
#include "quant/kernels/requant__avx2.h"

namespace qforge::quant {
namespace {

using namespace avx2;

constexpr int kV = 16;  // channels per block

struct BlockConsts {
  __m256i w[10];  // [pair p][half h]
  __m256i bias_lo, bias_hi;
  Mul8 m_lo, m_hi;
  __m256i zp, lo, hi;  // int16 lanes: out_zp, out_qmin, out_qmax
};

// Channels [c0, c0 + 16) of a Cp-padded array, split into the lo and hi lane orders.
inline void load_split(const int32_t* p, __m256i& lo, __m256i& hi) {
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8));
  lo = _mm256_permute2x128_si256(a, b, 0x20);
  hi = _mm256_permute2x128_si256(a, b, 0x31);
}

inline BlockConsts block_consts(const QDwConvArgs& a, int block, int c0) {
  BlockConsts k;
  const int16_t* w = static_cast<const int16_t*>(a.packed) + size_t(block) * kV * 10;
#pragma GCC unroll 10
  for (int i = 0; i < 10; ++i) k.w[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * kV));
  load_split(a.bias_packed + c0, k.bias_lo, k.bias_hi);
  __m256i m_lo, m_hi, l_lo, l_hi, r_lo, r_hi;
  load_split(a.rq_multiplier + c0, m_lo, m_hi);
  load_split(a.rq_lshift + c0, l_lo, l_hi);
  load_split(a.rq_rshift + c0, r_lo, r_hi);
  k.m_lo = make_mul8(m_lo, l_lo, r_lo);
  k.m_hi = make_mul8(m_hi, l_hi, r_hi);
  k.zp = _mm256_set1_epi16(static_cast<int16_t>(a.out_zp));
  k.lo = _mm256_set1_epi16(static_cast<int16_t>(a.out_qmin));
  k.hi = _mm256_set1_epi16(static_cast<int16_t>(a.out_qmax));
  return k;
}

inline __m256i load_x(const uint8_t* p) {
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// One output pixel, 16 channels: t[tap] points at the tap's first channel of the block.
inline __m128i pixel(const uint8_t* const* t, const BlockConsts& k) {
  __m256i lo = k.bias_lo, hi = k.bias_hi;
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p) {
    const __m256i xa = load_x(t[2 * p]), xb = load_x(t[2 * p + 1]);
    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(xa, xb), k.w[2 * p]));
    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(xa, xb), k.w[2 * p + 1]));
  }
  const __m256i x8 = load_x(t[8]), zero = _mm256_setzero_si256();
  lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(x8, zero), k.w[8]));
  hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(x8, zero), k.w[9]));
  // requantize's zero point and clamp, on int16 lanes in channel order: vpackssdw saturates q to
  // [-2^15, 2^15), vpaddsw saturates q + zp, and the clamp to [qmin, qmax] (within [0, 255]) gives
  // the value clamp(q + zp) has in exact integers either way.
  __m256i v = _mm256_packs_epi32(mul8(lo, k.m_lo), mul8(hi, k.m_hi));
  v = _mm256_min_epi16(_mm256_max_epi16(_mm256_adds_epi16(v, k.zp), k.lo), k.hi);
  return _mm_packus_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

// Output pixels [ow_begin, ow_end) of one row, one block at c0. BORDER: some taps may fall left
// or right of the image (checked per tap); otherwise every column is inside. base[kh]: the input
// row (or zero_row when the row is padding), cstep[kh]: C (or 0 for zero_row). STAGED (C < 16):
// the C bytes of each tap are copied into 16-byte rows first, the output back out of one.
template <bool BORDER, bool STAGED>
inline void run(const QDwConvArgs& a, const uint8_t* const* base, const int64_t* cstep, const uint8_t* zero,
                const BlockConsts& k, int c0, int ow_begin, int ow_end, uint8_t* orow) {
  const int s = a.stride, C = a.C;
  alignas(16) uint8_t stage[9][kV];
  if constexpr (STAGED) std::memset(stage, 0, sizeof(stage));
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
    uint8_t* o = orow + int64_t(ow) * C + c0;
    if constexpr (STAGED) {
      for (int i = 0; i < 9; ++i) {
        std::memcpy(stage[i], t[i], size_t(C));
        t[i] = stage[i];
      }
      alignas(16) uint8_t res[kV];
      _mm_store_si128(reinterpret_cast<__m128i*>(res), pixel(t, k));
      std::memcpy(o, res, size_t(C));
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), pixel(t, k));
    }
  }
}

}  // namespace

void qdwconv2d_3x3__avx2(uint8_t* out, const uint8_t* in, const QDwConvArgs& a, int64_t row_begin, int64_t row_end) {
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
    if (C < kV) {
      const BlockConsts k = block_consts(a, 0, 0);
      run<true, true>(a, base, cstep, a.zero_row, k, 0, 0, a.OW, orow);
      continue;
    }
    for (int b = 0; b < nb; ++b) {
      const int c0 = b * kV + kV <= C ? b * kV : C - kV;  // the last block ends at C
      const BlockConsts k = block_consts(a, b, c0);
      const uint8_t* zero = a.zero_row + c0;
      run<true, false>(a, base, cstep, zero, k, c0, 0, ow_lo, orow);
      run<false, false>(a, base, cstep, zero, k, c0, ow_lo, ow_hi, orow);
      run<true, false>(a, base, cstep, zero, k, c0, ow_hi, a.OW, orow);
    }
  }
}

}  // namespace qforge::quant
