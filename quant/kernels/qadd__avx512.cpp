// Add, 64 elements per step: zero-point offsets as int16 pairs (a, b), one vpmaddwd
// against (a_mul, b_mul), a rounding shift, saturating packs back to uint8.
// Needs only AVX-512 F/BW (level avx512).
// GCC 12's AVX-512 headers trip a false -Wmaybe-uninitialized on _mm512_set1/undefined vectors.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "quant/kernels/kernels.h"

namespace qforge::quant {

// a (n), b (n) -> out (n)
void qadd__avx512(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p) {
  const __m512i za = _mm512_set1_epi16(static_cast<int16_t>(p.a_zp)),
                zb = _mm512_set1_epi16(static_cast<int16_t>(p.b_zp));
  const __m512i mul =
      _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint16_t>(p.a_mul)) | (static_cast<int32_t>(p.b_mul) << 16));
  const __m512i half = _mm512_set1_epi32(int32_t{1} << (p.shift - 1)), zo = _mm512_set1_epi32(p.out_zp);
  const __m128i shift = _mm_cvtsi32_si128(p.shift);
  const __m512i lo8 = _mm512_set1_epi8(static_cast<char>(p.out_qmin)),
                hi8 = _mm512_set1_epi8(static_cast<char>(p.out_qmax));
  for (int64_t i = 0; i < n; i += 32) {
    const __mmask32 m = n - i >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((uint64_t{1} << (n - i)) - 1);
    const __m512i da = _mm512_sub_epi16(_mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, a + i)), za);
    const __m512i db = _mm512_sub_epi16(_mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, b + i)), zb);
    // Pairs (a_j, b_j) per 32-bit lane; unpack and the packs below interleave alike, so order is kept.
    __m512i lo = _mm512_madd_epi16(_mm512_unpacklo_epi16(da, db), mul);
    __m512i hi = _mm512_madd_epi16(_mm512_unpackhi_epi16(da, db), mul);
    lo = _mm512_add_epi32(_mm512_sra_epi32(_mm512_add_epi32(lo, half), shift), zo);
    hi = _mm512_add_epi32(_mm512_sra_epi32(_mm512_add_epi32(hi, half), shift), zo);
    const __m512i w = _mm512_packs_epi32(lo, hi);  // int16, saturating
    __m512i u = _mm512_packus_epi16(w, w);         // uint8, saturating to [0, 255]
    u = _mm512_min_epu8(_mm512_max_epu8(u, lo8), hi8);
    // packus duplicated each 128-bit lane's 8 results; gather the low halves in order.
    const __m512i idx = _mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0);
    const __m256i r = _mm512_castsi512_si256(_mm512_permutexvar_epi64(idx, u));
    _mm256_mask_storeu_epi8(out + i, m, r);
  }
}

}  // namespace qforge::quant
