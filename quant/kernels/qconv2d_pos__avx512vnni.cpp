// Batch-major direct NHWC convolution with vpdpbusd: micro-tiles of up to 5 images at one output
// position x 64 channels. Every pixel of a tile has the same window, so taps in the padding are
// skipped for the whole tile (their in_zp * sum(w) goes into the tile's bias), and slices are
// reached as base + image * (H*W*C) + tap offset: no indirection array. Optionally adds the
// residual branch in the epilogue with qadd's fixed-point math (see QAddParams), on the
// requantized bytes still in registers.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/kernels.h"
#include "quant/kernels/requant__avx512.h"

namespace qforge::quant {
namespace {

// Images per micro-tile. 5, not 6: with 6 x 4 accumulators + 4 weight vectors + the broadcast
// GCC 12 spills accumulators in the inner loop (and the residual add's epilogue makes it worse);
// ResNet18 28x28 b64 int8 went from 31.6 to 28.3 ms, the same bytes.
constexpr int kMaxMR = 5;
constexpr int kPanel = 64;

inline __m512i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// MR images at one position. w: the panel's packed weights [taps][kg][NB*16][4]; taps listed in
// tidx (nt of them) with input offsets toff; image i's window starts at in + i * istride;
// out / res point at (image 0, this position, the panel's first channel), image stride ostride.
template <int NB, int MR, bool ADD>
void ukernel(const uint8_t* in, int64_t istride, const int64_t* toff, const int* tidx, int nt, int kg, const int8_t* w,
             const int32_t* bias, const QConvArgs& a, const avx512::Requant16* rq, int oc0, int oc_valid, uint8_t* out,
             const uint8_t* res, int64_t ostride) {
  __m512i acc[MR][NB];
#pragma GCC unroll 4
  for (int nb = 0; nb < NB; ++nb) {
    const __m512i b = _mm512_loadu_si512(bias + oc0 + 16 * nb);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) acc[i][nb] = b;
  }
  const int64_t tap_bytes = int64_t(kg) * NB * 64;
  for (int j = 0; j < nt; ++j) {
    const uint8_t* p0 = in + toff[j];
    const int8_t* wt = w + tidx[j] * tap_bytes;
    for (int g = 0; g < kg; ++g, wt += NB * 64) {
      __m512i wv[NB];
#pragma GCC unroll 4
      for (int nb = 0; nb < NB; ++nb) wv[nb] = _mm512_load_si512(wt + nb * 64);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m512i x = bcast4(p0 + i * istride + 4 * g);
#pragma GCC unroll 4
        for (int nb = 0; nb < NB; ++nb) acc[i][nb] = _mm512_dpbusd_epi32(acc[i][nb], x, wv[nb]);
      }
    }
  }

  avx512::AddConsts ac;
  if constexpr (ADD) ac = avx512::make_add(a.add);
#pragma GCC unroll 4
  for (int nb = 0; nb < NB; ++nb) {
    const int lanes = oc_valid - 16 * nb;
    if (lanes <= 0) break;
    const __mmask16 m = lanes >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << lanes) - 1);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      __m512i v = avx512::requant16(acc[i][nb], rq[nb]);
      if constexpr (ADD) v = avx512::add16(v, _mm_maskz_loadu_epi8(m, res + i * ostride + 16 * nb), ac);
      _mm_mask_storeu_epi8(out + i * ostride + 16 * nb, m, _mm512_cvtepi32_epi8(v));
    }
  }
}

template <int NB, bool ADD>
void tile(int mr, const uint8_t* in, int64_t istride, const int64_t* toff, const int* tidx, int nt, int kg,
          const int8_t* w, const int32_t* bias, const QConvArgs& a, const avx512::Requant16* rq, int oc0, int oc_valid,
          uint8_t* out, const uint8_t* res, int64_t ostride) {
#define QF_MR(M)                                                                                            \
  case M:                                                                                                   \
    ukernel<NB, M, ADD>(in, istride, toff, tidx, nt, kg, w, bias, a, rq, oc0, oc_valid, out, res, ostride); \
    break;
  switch (mr) {
    QF_MR(6)
    QF_MR(5)
    QF_MR(4)
    QF_MR(3)
    QF_MR(2)
    QF_MR(1)
  }
#undef QF_MR
}

template <bool ADD>
void tile_nb(int nb, int mr, const uint8_t* in, int64_t istride, const int64_t* toff, const int* tidx, int nt, int kg,
             const int8_t* w, const int32_t* bias, const QConvArgs& a, const avx512::Requant16* rq, int oc0,
             int oc_valid, uint8_t* out, const uint8_t* res, int64_t ostride) {
  switch (nb) {
    case 4:
      tile<4, ADD>(mr, in, istride, toff, tidx, nt, kg, w, bias, a, rq, oc0, oc_valid, out, res, ostride);
      break;
    case 3:
      tile<3, ADD>(mr, in, istride, toff, tidx, nt, kg, w, bias, a, rq, oc0, oc_valid, out, res, ostride);
      break;
    case 2:
      tile<2, ADD>(mr, in, istride, toff, tidx, nt, kg, w, bias, a, rq, oc0, oc_valid, out, res, ostride);
      break;
    default:
      tile<1, ADD>(mr, in, istride, toff, tidx, nt, kg, w, bias, a, rq, oc0, oc_valid, out, res, ostride);
      break;
  }
}

}  // namespace

void qconv2d_pos__avx512vnni(uint8_t* out, const uint8_t* in, const QConvArgs& a, int pos_begin, int pos_end,
                             int oc_begin, int oc_end, void* scratch) {
  if (pos_end <= pos_begin || oc_end <= oc_begin) return;
  const int taps = a.taps, kg = a.ktp / 4, OCp = a.OCp;
  const int64_t K = int64_t(taps) * a.ktp;
  const int8_t* packed = static_cast<const int8_t*>(a.packed);
  int32_t* bias = static_cast<int32_t*>(scratch);  // see conv_pos_scratch_bytes
  int64_t* toff = reinterpret_cast<int64_t*>(reinterpret_cast<uint8_t*>(scratch) + (size_t(OCp) * 4 + 63) / 64 * 64);
  int* tidx = reinterpret_cast<int*>(toff + taps);
  const int64_t istride = int64_t(a.H) * a.W * a.C, ostride = int64_t(a.OH) * a.OW * a.OC;
  // Balanced tiles of at most kMaxMR images: sizes differ by at most one.
  const int N = a.N, ntiles = (N + kMaxMR - 1) / kMaxMR;
  const bool add = a.residual != nullptr;
  bool bias_full = false;  // bias holds bias_packed (the last position skipped no tap)
  for (int pos = pos_begin; pos < pos_end; ++pos) {
    const int oh = pos / a.OW, ow = pos % a.OW;
    int nt = 0;
    for (int kh = 0, t = 0; kh < a.KH; ++kh) {
      const int ih = oh * a.stride_h - a.pad_h + kh * a.dilation_h;
      for (int kw = 0; kw < a.KW; ++kw, ++t) {
        const int iw = ow * a.stride_w - a.pad_w + kw * a.dilation_w;
        if (ih < 0 || ih >= a.H || iw < 0 || iw >= a.W) continue;
        toff[nt] = (int64_t(ih) * a.W + iw) * a.C;
        tidx[nt++] = t;
      }
    }
    // bias_packed = bias - in_zp * sum(w) over all taps; add back the skipped taps' in_zp * sum(w), wrapping.
    if (nt < taps || !bias_full) {
      for (int o = 0; o < OCp; ++o) bias[o] = a.bias_packed[o];
      for (int t = 0, j = 0; t < taps; ++t) {
        if (j < nt && tidx[j] == t) {
          ++j;
          continue;
        }
        const int32_t* s = a.tap_wsum + int64_t(t) * OCp;
        for (int o = 0; o < OCp; ++o)
          bias[o] = static_cast<int32_t>(static_cast<uint32_t>(bias[o]) +
                                         static_cast<uint32_t>(a.in_zp) * static_cast<uint32_t>(s[o]));
      }
      bias_full = nt == taps;
    }
    // Panels outer: a panel's weights (up to 64 x 9 x 512 bytes) stay in L2 across the tiles.
    for (int oc0 = oc_begin; oc0 < oc_end; oc0 += kPanel) {
      const int width = OCp - oc0 < kPanel ? OCp - oc0 : kPanel;
      const int oc_valid = oc_end - oc0 < kPanel ? oc_end - oc0 : kPanel;
      const int8_t* w = packed + int64_t(oc0) * K;
      avx512::Requant16 rq[kPanel / 16];
      avx512::load_requant_panel(rq, a, oc0, width / 16);
      for (int tl = 0; tl < ntiles; ++tl) {
        const int n0 = int(int64_t(N) * tl / ntiles), n1 = int(int64_t(N) * (tl + 1) / ntiles);
        const int64_t o = int64_t(n0) * ostride + int64_t(pos) * a.OC + oc0;
        const uint8_t* x = in + int64_t(n0) * istride;
        if (add)
          tile_nb<true>(width / 16, n1 - n0, x, istride, toff, tidx, nt, kg, w, bias, a, rq, oc0, oc_valid, out + o,
                        a.residual + o, ostride);
        else
          tile_nb<false>(width / 16, n1 - n0, x, istride, toff, tidx, nt, kg, w, bias, a, rq, oc0, oc_valid, out + o,
                         nullptr, ostride);
      }
    }
  }
}

}  // namespace qforge::quant
