// Direct NHWC convolution with vpdpbusd (u8 x s8 -> s32): micro-tiles of 6 pixels x 64 channels.
//
// Per 4-byte k-group of a tap slice: 4 weight loads (64 channels x 4 bytes), 6 broadcasts of the
// pixels' 4 input bytes, 24 vpdpbusd into 24 zmm accumulators. Pixels reach their slices through
// the indirection array (build_conv_indirection), built once per chunk of micro-tiles and reused
// by every 64-channel panel; panels are the outer loop so a panel's weights stay in L2.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/kernels.h"
#include "quant/kernels/requant__avx512.h"

namespace qforge::quant {
namespace {

constexpr int kMR = 6;           // pixels per micro-tile (KernelTable::conv_mr)
constexpr int kPanel = 64;       // channels per panel (KernelTable::conv_panel_oc)
constexpr int kChunkTiles = 16;  // micro-tiles per indirection chunk (KernelTable::conv_chunk_tiles)

inline __m512i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// MR pixels (at most kMR). Slices: DIRECT: pixel i, tap t at base + i * pstride + tapoff[t]; else
// ind [taps][kMR] pointers. w: the panel's packed weights [taps][kg][NB*16][4];
// out / out_i32 point at (first pixel, first channel of the panel), row stride OC.
template <int NB, int MR, bool DIRECT>
void ukernel(const uint8_t* const* ind, const uint8_t* base, int64_t pstride, const int64_t* tapoff, int taps, int kg,
             const int8_t* w, const QConvArgs& a, const avx512::Requant16* rq, int oc0, int oc_valid, uint8_t* out,
             int32_t* out_i32, const uint8_t* res) {
  __m512i acc[MR][NB];
#pragma GCC unroll 4
  for (int nb = 0; nb < NB; ++nb) {
    const __m512i b = _mm512_loadu_si512(a.bias_packed + oc0 + 16 * nb);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) acc[i][nb] = b;
  }
  for (int t = 0; t < taps; ++t, ind += kMR) {
    const uint8_t* p[MR];
    if constexpr (DIRECT) {
      const uint8_t* b = base + tapoff[t];
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) p[i] = b + i * pstride;
    } else {
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) p[i] = ind[i];
    }
    for (int g = 0; g < kg; ++g, w += NB * 64) {
      __m512i wv[NB];
#pragma GCC unroll 4
      for (int nb = 0; nb < NB; ++nb) wv[nb] = _mm512_load_si512(w + nb * 64);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m512i x = bcast4(p[i] + 4 * g);
#pragma GCC unroll 4
        for (int nb = 0; nb < NB; ++nb) acc[i][nb] = _mm512_dpbusd_epi32(acc[i][nb], x, wv[nb]);
      }
    }
  }

  const int OC = a.OC;
  avx512::AddConsts ac;
  if (res) ac = avx512::make_add(a.add);
#pragma GCC unroll 4
  for (int nb = 0; nb < NB; ++nb) {
    const int lanes = oc_valid - 16 * nb;
    if (lanes <= 0) break;
    const __mmask16 m = lanes >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << lanes) - 1);
    if (out_i32) {
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) _mm512_mask_storeu_epi32(out_i32 + size_t(i) * OC + 16 * nb, m, acc[i][nb]);
      continue;
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      __m512i v = avx512::requant16(acc[i][nb], rq[nb]);
      if (res) v = avx512::add16(v, _mm_maskz_loadu_epi8(m, res + size_t(i) * OC + 16 * nb), ac);
      _mm_mask_storeu_epi8(out + size_t(i) * OC + 16 * nb, m, _mm512_cvtepi32_epi8(v));
    }
  }
}

// A tile of mr < kMR pixels (the last of a range; always through the indirection array) computes
// only those: a 7x7 map (49 pixels, 9 tiles) spent 5 of its 54 pixels' work on a full last tile.
template <int NB>
void tail(int mr, const uint8_t* const* ind, int taps, int kg, const int8_t* w, const QConvArgs& a,
          const avx512::Requant16* rq, int oc0, int oc_valid, uint8_t* out, int32_t* out_i32, const uint8_t* res) {
  switch (mr) {
#define QF_TAIL(M)                                                                                       \
  case M:                                                                                                \
    ukernel<NB, M, false>(ind, nullptr, 0, nullptr, taps, kg, w, a, rq, oc0, oc_valid, out, out_i32, res); \
    break;
    QF_TAIL(1)
    QF_TAIL(2)
    QF_TAIL(3)
    QF_TAIL(4)
    QF_TAIL(5)
#undef QF_TAIL
  }
}

}  // namespace

void qconv2d_6x64__avx512vnni(uint8_t* out, int32_t* out_i32, const uint8_t* in, const QConvArgs& a, int64_t pix_begin,
                              int64_t pix_end, int oc_begin, int oc_end, void* scratch) {
  if (pix_end <= pix_begin || oc_end <= oc_begin) return;
  const int taps = a.taps, kg = a.ktp / 4;
  const int64_t K = int64_t(taps) * a.ktp;
  const int8_t* packed = static_cast<const int8_t*>(a.packed);
  const uint8_t** ind = static_cast<const uint8_t**>(scratch);  // see conv_scratch_bytes
  const uint8_t** tile_base = ind + size_t(kChunkTiles) * kMR * taps;
  int64_t* tapoff = reinterpret_cast<int64_t*>(tile_base + kChunkTiles);
  uint8_t* seg = reinterpret_cast<uint8_t*>(tapoff + taps);
  conv_tap_offsets(tapoff, a);
  const int64_t pstride = int64_t(a.stride_w) * a.C;

  // Balanced chunks of at most kChunkTiles micro-tiles.
  const int64_t tiles = (pix_end - pix_begin + kMR - 1) / kMR;
  const int64_t chunks = (tiles + kChunkTiles - 1) / kChunkTiles;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t t0 = tiles * ch / chunks, t1 = tiles * (ch + 1) / chunks;
    const int64_t p0 = pix_begin + t0 * kMR;
    const int64_t p1 = pix_begin + t1 * kMR < pix_end ? pix_begin + t1 * kMR : pix_end;
    const int npix = static_cast<int>(p1 - p0);
    build_conv_indirection(ind, tile_base, seg, in, a, p0, npix, kMR);
    for (int oc0 = oc_begin; oc0 < oc_end; oc0 += kPanel) {
      const int width = a.OCp - oc0 < kPanel ? a.OCp - oc0 : kPanel;  // the panel's packed width
      const int oc_valid = (oc_end - oc0 < kPanel ? oc_end - oc0 : kPanel);
      const int8_t* w = packed + int64_t(oc0) * K;
      avx512::Requant16 rq[kPanel / 16];
      if (!out_i32) avx512::load_requant_panel(rq, a, oc0, width / 16);
      for (int tile = 0; tile < static_cast<int>(t1 - t0); ++tile) {
        const int mr_valid = npix - tile * kMR < kMR ? npix - tile * kMR : kMR;
        const int64_t p = p0 + int64_t(tile) * kMR;
        uint8_t* o = out ? out + p * a.OC + oc0 : nullptr;
        int32_t* o32 = out_i32 ? out_i32 + p * a.OC + oc0 : nullptr;
        const uint8_t* res = out && a.residual ? a.residual + p * a.OC + oc0 : nullptr;
        const uint8_t* const* ti = ind + size_t(tile) * taps * kMR;
        const uint8_t* tb = tile_base[tile];
#define QF_UK(NB)                                                                                     \
  (mr_valid < kMR ? tail<NB>(mr_valid, ti, taps, kg, w, a, rq, oc0, oc_valid, o, o32, res)             \
   : tb           ? ukernel<NB, kMR, true>(ti, tb, pstride, tapoff, taps, kg, w, a, rq, oc0, oc_valid, o, o32, res) \
                  : ukernel<NB, kMR, false>(ti, tb, pstride, tapoff, taps, kg, w, a, rq, oc0, oc_valid, o, o32, res))
        switch (width / 16) {
          case 4:
            QF_UK(4);
            break;
          case 3:
            QF_UK(3);
            break;
          case 2:
            QF_UK(2);
            break;
          default:
            QF_UK(1);
            break;
        }
#undef QF_UK
      }
    }
  }
}

}  // namespace qforge::quant
