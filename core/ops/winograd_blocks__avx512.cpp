// The AVX-512 Winograd blocks: 16 tiles at once, patches gathered and outputs
// scattered with masks for the padding and the last block; the same bits as
// winograd_blocks.cpp.
#include <immintrin.h>

#include "core/ops/winograd_blocks.h"

namespace qforge::winograd_detail {
namespace {

typedef float V16 __attribute__((vector_size(64)));
#define QF_AVX512 __attribute__((target("avx512f")))

QF_AVX512 inline __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// The block's tiles: index of each tile's top-left element (row + dy, column
// + dx) in the plane, and which of 6 rows / columns from there are inside.
struct BlockGeo {
  __m512i idx;
  __mmask16 rows[6], cols[6];
};

QF_AVX512 inline BlockGeo block_geo(const TileTable& tt, int64_t t0, __mmask16 lanes, int64_t img_stride, int h, int w,
                                    int d, int n) {
  BlockGeo g;
  const __m512i img = _mm512_maskz_loadu_epi32(lanes, tt.img.data() + t0);
  const __m512i row = _mm512_add_epi32(_mm512_maskz_loadu_epi32(lanes, tt.row.data() + t0), _mm512_set1_epi32(d));
  const __m512i col = _mm512_add_epi32(_mm512_maskz_loadu_epi32(lanes, tt.col.data() + t0), _mm512_set1_epi32(d));
  g.idx = _mm512_add_epi32(_mm512_add_epi32(_mm512_mullo_epi32(img, _mm512_set1_epi32(static_cast<int>(img_stride))),
                                            _mm512_mullo_epi32(row, _mm512_set1_epi32(w))),
                           col);
  const __m512i zero = _mm512_setzero_si512();
  for (int k = 0; k < n; ++k) {
    const __m512i r = _mm512_add_epi32(row, _mm512_set1_epi32(k)), c = _mm512_add_epi32(col, _mm512_set1_epi32(k));
    g.rows[k] = _mm512_mask_cmpge_epi32_mask(lanes, r, zero) & _mm512_cmplt_epi32_mask(r, _mm512_set1_epi32(h));
    g.cols[k] = _mm512_cmpge_epi32_mask(c, zero) & _mm512_cmplt_epi32_mask(c, _mm512_set1_epi32(w));
  }
  return g;
}

// Where tap (r, q) of each lane's window sits, and its value (zero outside the plane).
QF_AVX512 inline __m512i tap_index(const BlockGeo& g, int r, int q, int w) {
  return _mm512_add_epi32(g.idx, _mm512_set1_epi32(r * w + q));
}

QF_AVX512 inline V16 gather(const float* base, const BlockGeo& g, int r, int q, int w) {
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), g.rows[r] & g.cols[q], tap_index(g, r, q, w), base, 4);
}

QF_AVX512 void input_block_avx512(float* v, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0,
                                  int cnt) {
  const __mmask16 lanes = tail_mask(cnt);
  const BlockGeo g = block_geo(tt, t0, lanes, p.img_stride, p.h, p.w, -1, 6);
  V16 d[kXi], o[kXi];
  for (int r = 0; r < 6; ++r)
    for (int q = 0; q < 6; ++q) d[r * 6 + q] = gather(p.base, g, r, q, p.w);
  input_2d(o, d);
  for (int xi = 0; xi < kXi; ++xi) _mm512_mask_storeu_ps(v + xi * xs + t0, lanes, o[xi]);
}

QF_AVX512 void output_block_avx512(const Plane<float>& p, const float* m, int64_t xs, const TileTable& tt, int64_t t0,
                                   int cnt, bool accumulate) {
  const __mmask16 lanes = tail_mask(cnt);
  const BlockGeo g = block_geo(tt, t0, lanes, p.img_stride, p.h, p.w, 0, 4);
  V16 mm[kXi], y[16];
  for (int xi = 0; xi < kXi; ++xi) mm[xi] = _mm512_maskz_loadu_ps(lanes, m + xi * xs + t0);
  output_2d(y, mm);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) {
      V16 val = y[a * 4 + b];
      if (accumulate) val = gather(p.base, g, a, b, p.w) + val;
      _mm512_mask_i32scatter_ps(p.base, g.rows[a] & g.cols[b], tap_index(g, a, b, p.w), val, 4);
    }
}

QF_AVX512 void output_adjoint_block_avx512(float* dm, int64_t xs, const Plane<const float>& p, const TileTable& tt,
                                           int64_t t0, int cnt) {
  const __mmask16 lanes = tail_mask(cnt);
  const BlockGeo g = block_geo(tt, t0, lanes, p.img_stride, p.h, p.w, 0, 4);
  V16 dy[16], o[kXi];
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) dy[a * 4 + b] = gather(p.base, g, a, b, p.w);
  output_adjoint_2d(o, dy);
  for (int xi = 0; xi < kXi; ++xi) _mm512_mask_storeu_ps(dm + xi * xs + t0, lanes, o[xi]);
}

QF_AVX512 void filter_block_avx512(float* u, const float* w, int64_t rs, int64_t ks, int es, int64_t us, int cols,
                                   int r, int k0, int cnt) {
  const __mmask16 lanes = tail_mask(cnt);
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(static_cast<int>(ks)));
  const float* base = w + r * rs + k0 * ks;
  V16 g[9], o[kXi];
  for (int e = 0; e < 9; ++e) g[e] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, idx, base + e * es, 4);
  filter_2d(o, g);
  for (int xi = 0; xi < kXi; ++xi)
    _mm512_mask_storeu_ps(u + xi * us + static_cast<int64_t>(r) * cols + k0, lanes, o[xi]);
}

QF_AVX512 void filter_adjoint_block_avx512(float* dw, const float* du, int64_t us, int c_n, int oc, int c0, int cnt) {
  const __mmask16 lanes = tail_mask(cnt);
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(9));
  V16 d[kXi], h[9];
  for (int xi = 0; xi < kXi; ++xi)
    d[xi] = _mm512_maskz_loadu_ps(lanes, du + xi * us + static_cast<int64_t>(oc) * c_n + c0);
  filter_adjoint_2d(h, d);
  float* g = dw + (static_cast<int64_t>(oc) * c_n + c0) * 9;
  for (int e = 0; e < 9; ++e) {
    const V16 sum = V16(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, idx, g + e, 4)) + h[e];
    _mm512_mask_i32scatter_ps(g + e, lanes, idx, sum, 4);
  }
}

}  // namespace

const BlockKernels kBlocksAvx512 = {input_block_avx512, output_block_avx512, output_adjoint_block_avx512,
                                    filter_block_avx512, filter_adjoint_block_avx512};

}  // namespace qforge::winograd_detail
