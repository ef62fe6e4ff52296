// Add (TFLite's integer scheme), 16 elements per step; the tail goes through a small buffer.
#include <cstring>

#include "quant/kernels/kernels.h"
#include "quant/kernels/requant__avx2.h"

namespace qforge::quant {
namespace {

struct AddConsts {
  avx2::Mul8 ma, mb;
  avx2::Requant8 ro;
  __m256i za, zb;
  __m128i shift;
};

inline __m256i add8(__m128i a8, __m128i b8, const AddConsts& k) {
  const __m256i xa = _mm256_sub_epi32(_mm256_cvtepu8_epi32(a8), k.za);
  const __m256i xb = _mm256_sub_epi32(_mm256_cvtepu8_epi32(b8), k.zb);
  const __m256i sa = avx2::mul8(_mm256_sll_epi32(xa, k.shift), k.ma);
  const __m256i sb = avx2::mul8(_mm256_sll_epi32(xb, k.shift), k.mb);
  return avx2::requant8(_mm256_add_epi32(sa, sb), k.ro);
}

inline __m128i add16(const uint8_t* a, const uint8_t* b, const AddConsts& k) {
  const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  return avx2::pack16(add8(va, vb, k), add8(_mm_srli_si128(va, 8), _mm_srli_si128(vb, 8), k));
}

}  // namespace

// a (n), b (n) -> out (n)
void qadd__avx2(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p) {
  AddConsts k;
  k.ma = avx2::broadcast_mul8(p.a_multiplier);
  k.mb = avx2::broadcast_mul8(p.b_multiplier);
  k.ro = avx2::make_requant8(avx2::broadcast_mul8(p.out_multiplier), p.out_zp, p.out_qmin, p.out_qmax);
  k.za = _mm256_set1_epi32(p.a_zp);
  k.zb = _mm256_set1_epi32(p.b_zp);
  k.shift = _mm_cvtsi32_si128(p.left_shift);
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
