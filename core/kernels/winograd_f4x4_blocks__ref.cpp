// The portable Winograd blocks: channel by channel, the definition of the bits.
#include "core/kernels/winograd_f4x4_tiles.h"

namespace qforge::winograd_detail {
namespace {

// The layout passes, pixel by pixel.
void to_nhwc_ref(float* dst, int64_t rs, int64_t ps, const float* src, int64_t cs, int h, int w, int nc) {
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int i = 0; i < kLanes; ++i) dst[y * rs + x * ps + i] = i < nc ? src[i * cs + y * w + x] : 0.f;
}

void from_nhwc_ref(float* dst, int64_t cs, const float* src, int64_t rs, int64_t ps, int h, int w, int nc,
                   bool accumulate, const ChannelFinish& fin) {
  for (int i = 0; i < nc; ++i) {
    const float b = fin.bias ? fin.bias[i] : 0.f;
    for (int y = 0; y < h; ++y) {
      float* o = dst + i * cs + y * w;
      for (int x = 0; x < w; ++x) {
        const float v = src[y * rs + x * ps + i];
        o[x] = accumulate ? o[x] + v : fin.bias ? v + b : v;
      }
      if (!accumulate && fin.relu) bias_clamp__ref(o, o, w, 0.f, fin.hi);  // the separate pass's clamp
    }
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

// The tile runs channel by channel (winograd_f4x4_tiles.h with one float per lane).
const BlockKernels winograd_f4x4_blocks__ref = {input_tiles<float, 1>, output_tiles<float, 1>,
                                                output_adjoint_tiles<float, 1>, to_nhwc_ref, from_nhwc_ref,
                                                filter_block_ref, filter_adjoint_block_ref};

}  // namespace qforge::winograd_detail
