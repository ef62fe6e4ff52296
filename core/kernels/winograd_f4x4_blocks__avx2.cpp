// The AVX2 Winograd blocks: the tile runs 16 channels at once (winograd_f4x4_tiles.h, each
// 64-byte vector two registers), the layout passes by 16x16 transposes, the filters 8 at once
// (gathered; a block of 16 in two halves). The same bits as winograd_f4x4_blocks__ref.cpp.
#include <immintrin.h>

#include <algorithm>

#include "core/kernels/winograd_f4x4_tiles.h"

namespace qforge::winograd_detail {
namespace {

typedef float V8 __attribute__((vector_size(32)));

inline __m256i tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
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

void filter_block_avx2(float* u, const float* w, int64_t rs, int64_t ks, int es, int64_t us, int cols, int r, int k0,
                       int cnt) {
  filter_half(u, w, rs, ks, es, us, cols, r, k0, std::min(cnt, 8));
  if (cnt > 8) filter_half(u, w, rs, ks, es, us, cols, r, k0 + 8, cnt - 8);
}

void filter_adjoint_block_avx2(float* dw, const float* du, int64_t us, int c_n, int oc, int c0, int cnt) {
  filter_adjoint_half(dw, du, us, c_n, oc, c0, std::min(cnt, 8));
  if (cnt > 8) filter_adjoint_half(dw, du, us, c_n, oc, c0 + 8, cnt - 8);
}

// The first n floats of 16 through a zeroed copy (AVX2's masked moves take 8).
struct PartialMem {
  static void load(Floats16* v, const float* p, int n) {
    std::memset(v, 0, sizeof *v);
    std::memcpy(v, p, n * sizeof(float));
  }
  static void store(float* p, const Floats16* v, int n) { std::memcpy(p, v, n * sizeof(float)); }
};

}  // namespace

const BlockKernels winograd_f4x4_blocks__avx2 = {
    input_tiles<Floats16, 16>, output_tiles<Floats16, 16>, output_adjoint_tiles<Floats16, 16>,
    to_nhwc_vec<PartialMem>,   from_nhwc_vec<PartialMem>,  filter_block_avx2,
    filter_adjoint_block_avx2};

}  // namespace qforge::winograd_detail
