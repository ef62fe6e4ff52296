// The portable Winograd blocks: tile by tile, the definition of the bits.
#include "core/kernels/winograd_f4x4_blocks.h"

namespace qforge::winograd_detail {
namespace {

// Portable: tile by tile.
void input_block_ref(float* v, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0, int cnt) {
  for (int l = 0; l < cnt; ++l) {
    const int64_t t = t0 + l;
    const float* src = p.base + tt.img[t] * p.img_stride;
    float d[kXi], o[kXi];
    for (int r = 0; r < 6; ++r)
      for (int q = 0; q < 6; ++q) {
        const int y = tt.row[t] + r - 1, x = tt.col[t] + q - 1;
        d[r * 6 + q] = p.inside(y, x) ? src[static_cast<int64_t>(y) * p.w + x] : 0.f;
      }
    input_2d(o, d);
    for (int xi = 0; xi < kXi; ++xi) v[xi * xs + t] = o[xi];
  }
}

void output_block_ref(const Plane<float>& p, const float* m, int64_t xs, const TileTable& tt, int64_t t0, int cnt,
                      bool accumulate) {
  for (int l = 0; l < cnt; ++l) {
    const int64_t t = t0 + l;
    float* dst = p.base + tt.img[t] * p.img_stride;
    float mm[kXi], y[16];
    for (int xi = 0; xi < kXi; ++xi) mm[xi] = m[xi * xs + t];
    output_2d(y, mm);
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        const int yy = tt.row[t] + a, xx = tt.col[t] + b;
        if (!p.inside(yy, xx)) continue;
        float& o = dst[static_cast<int64_t>(yy) * p.w + xx];
        o = accumulate ? o + y[a * 4 + b] : y[a * 4 + b];
      }
  }
}

void output_adjoint_block_ref(float* dm, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0,
                              int cnt) {
  for (int l = 0; l < cnt; ++l) {
    const int64_t t = t0 + l;
    const float* src = p.base + tt.img[t] * p.img_stride;
    float dy[16], o[kXi];
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        const int yy = tt.row[t] + a, xx = tt.col[t] + b;
        dy[a * 4 + b] = p.inside(yy, xx) ? src[static_cast<int64_t>(yy) * p.w + xx] : 0.f;
      }
    output_adjoint_2d(o, dy);
    for (int xi = 0; xi < kXi; ++xi) dm[xi * xs + t] = o[xi];
  }
}

void filter_block_ref(float* u, const float* w, int64_t rs, int64_t ks, int es, int64_t us, int cols, int r, int k0,
                      int cnt) {
  for (int k = k0; k < k0 + cnt; ++k) {
    float g[9], o[kXi];
    for (int e = 0; e < 9; ++e) g[e] = w[r * rs + k * ks + e * es];
    filter_2d(o, g);
    for (int xi = 0; xi < kXi; ++xi) u[xi * us + static_cast<int64_t>(r) * cols + k] = o[xi];
  }
}

void filter_adjoint_block_ref(float* dw, const float* du, int64_t us, int c_n, int oc, int c0, int cnt) {
  for (int c = c0; c < c0 + cnt; ++c) {
    float d[kXi], h[9];
    for (int xi = 0; xi < kXi; ++xi) d[xi] = du[xi * us + static_cast<int64_t>(oc) * c_n + c];
    filter_adjoint_2d(h, d);
    float* g = dw + (static_cast<int64_t>(oc) * c_n + c) * 9;
    for (int e = 0; e < 9; ++e) g[e] += h[e];
  }
}

}  // namespace

const BlockKernels winograd_f4x4_blocks__ref = {input_block_ref, output_block_ref, output_adjoint_block_ref,
                                                filter_block_ref, filter_adjoint_block_ref};

}  // namespace qforge::winograd_detail
