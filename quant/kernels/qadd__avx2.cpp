// Add, 16 elements per step: zero-point offsets as int16 pairs (a, b), one vpmaddwd
// against (a_mul, b_mul), a rounding shift, saturating packs back to uint8.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/kernels.h"

namespace qforge::quant {
namespace {

struct AddConsts {
  __m256i za, zb, mul, half, zo;
  __m128i shift, lo8, hi8;
};

inline __m128i add16(const uint8_t* a, const uint8_t* b, const AddConsts& k) {
  const __m256i da = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a))), k.za);
  const __m256i db = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b))), k.zb);
  __m256i lo = _mm256_madd_epi16(_mm256_unpacklo_epi16(da, db), k.mul);
  __m256i hi = _mm256_madd_epi16(_mm256_unpackhi_epi16(da, db), k.mul);
  lo = _mm256_add_epi32(_mm256_sra_epi32(_mm256_add_epi32(lo, k.half), k.shift), k.zo);
  hi = _mm256_add_epi32(_mm256_sra_epi32(_mm256_add_epi32(hi, k.half), k.shift), k.zo);
  const __m256i w = _mm256_packs_epi32(lo, hi);  // int16 in the original order, per 128-bit lane
  const __m128i u = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
  return _mm_min_epu8(_mm_max_epu8(u, k.lo8), k.hi8);
}

}  // namespace

// a (n), b (n) -> out (n)
void qadd__avx2(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p) {
  AddConsts k;
  k.za = _mm256_set1_epi16(static_cast<int16_t>(p.a_zp));
  k.zb = _mm256_set1_epi16(static_cast<int16_t>(p.b_zp));
  k.mul =
      _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint16_t>(p.a_mul)) | (static_cast<int32_t>(p.b_mul) << 16));
  k.half = _mm256_set1_epi32(int32_t{1} << (p.shift - 1));
  k.zo = _mm256_set1_epi32(p.out_zp);
  k.shift = _mm_cvtsi32_si128(p.shift);
  k.lo8 = _mm_set1_epi8(static_cast<char>(p.out_qmin));
  k.hi8 = _mm_set1_epi8(static_cast<char>(p.out_qmax));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), add16(a + i, b + i, k));
  if (i < n) {
    alignas(16) uint8_t ta[16] = {}, tb[16] = {}, to[16];
    std::memcpy(ta, a + i, n - i);
    std::memcpy(tb, b + i, n - i);
    _mm_store_si128(reinterpret_cast<__m128i*>(to), add16(ta, tb, k));
    std::memcpy(out + i, to, n - i);
  }
}

}  // namespace qforge::quant
