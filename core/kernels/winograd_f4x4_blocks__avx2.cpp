// The AVX2 Winograd blocks: 8 tiles at once (a block of 16 in two halves),
// patches gathered with masks for the padding and the last block; AVX2 has no
// scatter, so outputs are stored lane by lane. The same bits as
// winograd_f4x4_blocks__ref.cpp.
#include <immintrin.h>

#include <algorithm>

#include "core/kernels/winograd_f4x4_blocks.h"

namespace qforge::winograd_detail {
namespace {

typedef float V8 __attribute__((vector_size(32)));

inline __m256i tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256i in_range(__m256i x, int n) {  // 0 <= x < n
  return _mm256_and_si256(_mm256_cmpgt_epi32(x, _mm256_set1_epi32(-1)), _mm256_cmpgt_epi32(_mm256_set1_epi32(n), x));
}

// The block's tiles: index of each tile's top-left element (row + d, column
// + d) in the plane, and which of n rows / columns from there are inside.
struct BlockGeo {
  __m256i idx;
  __m256i rows[6], cols[6];
};

inline BlockGeo block_geo(const TileTable& tt, int64_t t0, __m256i lanes, int64_t img_stride, int h, int w, int d,
                          int n) {
  BlockGeo g;
  const __m256i img = _mm256_maskload_epi32(tt.img.data() + t0, lanes);
  const __m256i row = _mm256_add_epi32(_mm256_maskload_epi32(tt.row.data() + t0, lanes), _mm256_set1_epi32(d));
  const __m256i col = _mm256_add_epi32(_mm256_maskload_epi32(tt.col.data() + t0, lanes), _mm256_set1_epi32(d));
  g.idx = _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(img, _mm256_set1_epi32(static_cast<int>(img_stride))),
                                            _mm256_mullo_epi32(row, _mm256_set1_epi32(w))),
                           col);
  for (int k = 0; k < n; ++k) {
    g.rows[k] = _mm256_and_si256(lanes, in_range(_mm256_add_epi32(row, _mm256_set1_epi32(k)), h));
    g.cols[k] = in_range(_mm256_add_epi32(col, _mm256_set1_epi32(k)), w);
  }
  return g;
}

inline V8 gather(const float* base, const BlockGeo& g, int r, int q, int w) {
  const __m256 mask = _mm256_castsi256_ps(_mm256_and_si256(g.rows[r], g.cols[q]));
  return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, _mm256_add_epi32(g.idx, _mm256_set1_epi32(r * w + q)),
                                  mask, 4);
}

void input_half(float* v, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0, int cnt) {
  const __m256i lanes = tail_mask(cnt);
  const BlockGeo g = block_geo(tt, t0, lanes, p.img_stride, p.h, p.w, -1, 6);
  V8 d[kXi], o[kXi];
  for (int r = 0; r < 6; ++r)
    for (int q = 0; q < 6; ++q) d[r * 6 + q] = gather(p.base, g, r, q, p.w);
  input_2d(o, d);
  for (int xi = 0; xi < kXi; ++xi) _mm256_maskstore_ps(v + xi * xs + t0, lanes, o[xi]);
}

void output_half(const Plane<float>& p, const float* m, int64_t xs, const TileTable& tt, int64_t t0, int cnt,
                 bool accumulate) {
  const __m256i lanes = tail_mask(cnt);
  V8 mm[kXi], y[16];
  for (int xi = 0; xi < kXi; ++xi) mm[xi] = _mm256_maskload_ps(m + xi * xs + t0, lanes);
  output_2d(y, mm);
  alignas(32) float ys[16][8];
  for (int k = 0; k < 16; ++k) _mm256_store_ps(ys[k], y[k]);
  for (int l = 0; l < cnt; ++l) {
    const int64_t t = t0 + l;
    float* dst = p.base + tt.img[t] * p.img_stride;
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        const int yy = tt.row[t] + a, xx = tt.col[t] + b;
        if (!p.inside(yy, xx)) continue;
        float& o = dst[static_cast<int64_t>(yy) * p.w + xx];
        o = accumulate ? o + ys[a * 4 + b][l] : ys[a * 4 + b][l];
      }
  }
}

void output_adjoint_half(float* dm, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0, int cnt) {
  const __m256i lanes = tail_mask(cnt);
  const BlockGeo g = block_geo(tt, t0, lanes, p.img_stride, p.h, p.w, 0, 4);
  V8 dy[16], o[kXi];
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) dy[a * 4 + b] = gather(p.base, g, a, b, p.w);
  output_adjoint_2d(o, dy);
  for (int xi = 0; xi < kXi; ++xi) _mm256_maskstore_ps(dm + xi * xs + t0, lanes, o[xi]);
}

void filter_half(float* u, const float* w, int64_t rs, int64_t ks, int es, int64_t us, int cols, int r, int k0,
                 int cnt) {
  const __m256i lanes = tail_mask(cnt);
  const __m256i idx =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(ks)));
  const float* base = w + r * rs + k0 * ks;
  V8 g[9], o[kXi];
  for (int e = 0; e < 9; ++e)
    g[e] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base + e * es, idx, _mm256_castsi256_ps(lanes), 4);
  filter_2d(o, g);
  for (int xi = 0; xi < kXi; ++xi) _mm256_maskstore_ps(u + xi * us + static_cast<int64_t>(r) * cols + k0, lanes, o[xi]);
}

void filter_adjoint_half(float* dw, const float* du, int64_t us, int c_n, int oc, int c0, int cnt) {
  const __m256i lanes = tail_mask(cnt);
  V8 d[kXi], h[9];
  for (int xi = 0; xi < kXi; ++xi)
    d[xi] = _mm256_maskload_ps(du + xi * us + static_cast<int64_t>(oc) * c_n + c0, lanes);
  filter_adjoint_2d(h, d);
  alignas(32) float hs[9][8];
  for (int e = 0; e < 9; ++e) _mm256_store_ps(hs[e], h[e]);
  for (int l = 0; l < cnt; ++l) {
    float* g = dw + (static_cast<int64_t>(oc) * c_n + c0 + l) * 9;
    for (int e = 0; e < 9; ++e) g[e] += hs[e][l];
  }
}

// A block of up to 16 as two halves of up to 8.
void input_block_avx2(float* v, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0, int cnt) {
  input_half(v, xs, p, tt, t0, std::min(cnt, 8));
  if (cnt > 8) input_half(v, xs, p, tt, t0 + 8, cnt - 8);
}

void output_block_avx2(const Plane<float>& p, const float* m, int64_t xs, const TileTable& tt, int64_t t0, int cnt,
                       bool accumulate) {
  output_half(p, m, xs, tt, t0, std::min(cnt, 8), accumulate);
  if (cnt > 8) output_half(p, m, xs, tt, t0 + 8, cnt - 8, accumulate);
}

void output_adjoint_block_avx2(float* dm, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0,
                               int cnt) {
  output_adjoint_half(dm, xs, p, tt, t0, std::min(cnt, 8));
  if (cnt > 8) output_adjoint_half(dm, xs, p, tt, t0 + 8, cnt - 8);
}

void filter_block_avx2(float* u, const float* w, int64_t rs, int64_t ks, int es, int64_t us, int cols, int r, int k0,
                       int cnt) {
  filter_half(u, w, rs, ks, es, us, cols, r, k0, std::min(cnt, 8));
  if (cnt > 8) filter_half(u, w, rs, ks, es, us, cols, r, k0 + 8, cnt - 8);
}

void filter_adjoint_block_avx2(float* dw, const float* du, int64_t us, int c_n, int oc, int c0, int cnt) {
  filter_adjoint_half(dw, du, us, c_n, oc, c0, std::min(cnt, 8));
  if (cnt > 8) filter_adjoint_half(dw, du, us, c_n, oc, c0 + 8, cnt - 8);
}

}  // namespace

const BlockKernels winograd_f4x4_blocks__avx2 = {input_block_avx2, output_block_avx2, output_adjoint_block_avx2,
                                                 filter_block_avx2, filter_adjoint_block_avx2};

}  // namespace qforge::winograd_detail
