// Direct NHWC convolution for AVX2 without VNNI: micro-tiles of 4 pixels x 16 channels.
//
// vpmaddubsw would saturate (255*127*2 > 2^15), so both operands are 16-bit: weights are widened
// at pack time, and the 4 broadcast input bytes (x0 x1 x2 x3) of each pixel split into the words
// (x0, x2) by a mask and (x1, x3) by a shift, each meeting a weight vector of matching pairs in
// vpmaddwd (exact: |2 * 255 * 128| < 2^31). Same indirection and loop order as the VNNI kernel.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/kernels.h"
#include "quant/kernels/requant__avx2.h"

namespace qforge::quant {
namespace {

constexpr int kMR = 4;           // KernelTable::conv_mr
constexpr int kPanel = 16;       // KernelTable::conv_panel_oc
constexpr int kChunkTiles = 24;  // KernelTable::conv_chunk_tiles

inline __m256i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Slices: DIRECT: pixel i, tap t at base + i * pstride + tapoff[t]; else ind [taps][kMR] pointers.
// w: the panel's packed weights [taps][kg][4][16] int16.
template <bool DIRECT>
void ukernel(const uint8_t* const* ind, const uint8_t* base, int64_t pstride, const int64_t* tapoff, int taps, int kg,
             const int16_t* w, const QConvArgs& a, int oc0, int oc_valid, uint8_t* out, int32_t* out_i32,
             int mr_valid) {
  __m256i acc[kMR][2];
  const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bias_packed + oc0));
  const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bias_packed + oc0 + 8));
#pragma GCC unroll 8
  for (int i = 0; i < kMR; ++i) acc[i][0] = b0, acc[i][1] = b1;
  const __m256i low_bytes = _mm256_set1_epi16(0x00FF);
  for (int t = 0; t < taps; ++t, ind += kMR) {
    const uint8_t* p[kMR];
    if constexpr (DIRECT) {
      const uint8_t* b = base + tapoff[t];
#pragma GCC unroll 8
      for (int i = 0; i < kMR; ++i) p[i] = b + i * pstride;
    } else {
#pragma GCC unroll 8
      for (int i = 0; i < kMR; ++i) p[i] = ind[i];
    }
    for (int g = 0; g < kg; ++g, w += 64) {
      const __m256i w00 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w));
      const __m256i w01 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 16));
      const __m256i w10 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 32));
      const __m256i w11 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 48));
#pragma GCC unroll 8
      for (int i = 0; i < kMR; ++i) {
        const __m256i d = bcast4(p[i] + 4 * g);
        const __m256i even = _mm256_and_si256(d, low_bytes);  // words (x0, x2)
        const __m256i odd = _mm256_srli_epi16(d, 8);          // words (x1, x3)
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(even, w00));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(even, w01));
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(odd, w10));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(odd, w11));
      }
    }
  }

  const int OC = a.OC;
  if (out_i32) {
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      if (i >= mr_valid) break;
      int32_t* o = out_i32 + size_t(i) * OC;
      if (oc_valid >= 16) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), acc[i][0]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), acc[i][1]);
      } else {
        alignas(32) int32_t tmp[16];
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[i][0]);
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), acc[i][1]);
        std::memcpy(o, tmp, sizeof(int32_t) * oc_valid);
      }
    }
    return;
  }
  const avx2::Requant8 r0 = avx2::load_requant8(a.rq_multiplier + oc0, a.rq_lshift + oc0, a.rq_rshift + oc0, a.out_zp,
                                                a.out_qmin, a.out_qmax);
  const avx2::Requant8 r1 = avx2::load_requant8(a.rq_multiplier + oc0 + 8, a.rq_lshift + oc0 + 8, a.rq_rshift + oc0 + 8,
                                                a.out_zp, a.out_qmin, a.out_qmax);
#pragma GCC unroll 8
  for (int i = 0; i < kMR; ++i) {
    if (i >= mr_valid) break;
    const __m128i b = avx2::pack16(avx2::requant8(acc[i][0], r0), avx2::requant8(acc[i][1], r1));
    uint8_t* o = out + size_t(i) * OC;
    if (oc_valid >= 16) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), b);
    } else {
      alignas(16) uint8_t tmp[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b);
      std::memcpy(o, tmp, oc_valid);
    }
  }
}

}  // namespace

void qconv2d_4x16__avx2(uint8_t* out, int32_t* out_i32, const uint8_t* in, const QConvArgs& a, int64_t pix_begin,
                        int64_t pix_end, int oc_begin, int oc_end, void* scratch) {
  if (pix_end <= pix_begin || oc_end <= oc_begin) return;
  const int taps = a.taps, kg = a.ktp / 4;
  const int64_t K = int64_t(taps) * a.ktp;
  const int16_t* packed = static_cast<const int16_t*>(a.packed);
  const uint8_t** ind = static_cast<const uint8_t**>(scratch);  // see conv_scratch_bytes
  const uint8_t** tile_base = ind + size_t(kChunkTiles) * kMR * taps;
  int64_t* tapoff = reinterpret_cast<int64_t*>(tile_base + kChunkTiles);
  uint8_t* seg = reinterpret_cast<uint8_t*>(tapoff + taps);
  conv_tap_offsets(tapoff, a);
  const int64_t pstride = int64_t(a.stride_w) * a.C;

  const int64_t tiles = (pix_end - pix_begin + kMR - 1) / kMR;
  const int64_t chunks = (tiles + kChunkTiles - 1) / kChunkTiles;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t t0 = tiles * ch / chunks, t1 = tiles * (ch + 1) / chunks;
    const int64_t p0 = pix_begin + t0 * kMR;
    const int64_t p1 = pix_begin + t1 * kMR < pix_end ? pix_begin + t1 * kMR : pix_end;
    const int npix = static_cast<int>(p1 - p0);
    build_conv_indirection(ind, tile_base, seg, in, a, p0, npix, kMR);
    for (int oc0 = oc_begin; oc0 < oc_end; oc0 += kPanel) {
      const int oc_valid = oc_end - oc0 < kPanel ? oc_end - oc0 : kPanel;
      const int16_t* w = packed + int64_t(oc0) * K;
      for (int tile = 0; tile < static_cast<int>(t1 - t0); ++tile) {
        const int mr_valid = npix - tile * kMR < kMR ? npix - tile * kMR : kMR;
        const int64_t p = p0 + int64_t(tile) * kMR;
        const uint8_t* const* ti = ind + size_t(tile) * taps * kMR;
        uint8_t* o = out ? out + p * a.OC + oc0 : nullptr;
        int32_t* o32 = out_i32 ? out_i32 + p * a.OC + oc0 : nullptr;
        if (tile_base[tile])
          ukernel<true>(ti, tile_base[tile], pstride, tapoff, taps, kg, w, a, oc0, oc_valid, o, o32, mr_valid);
        else
          ukernel<false>(ti, nullptr, pstride, tapoff, taps, kg, w, a, oc0, oc_valid, o, o32, mr_valid);
      }
    }
  }
}

}  // namespace qforge::quant
