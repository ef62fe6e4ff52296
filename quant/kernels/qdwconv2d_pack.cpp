// Packing for the SIMD depthwise 3x3 kernels (generic code, run once at load time); layouts in qdwconv2d.h.
#include <cstring>

#include "quant/kernels/qdwconv2d.h"

namespace qforge::quant {
namespace {

// Block start channels: full blocks of V, then the tail (see qdwconv2d.h).
int dw_blocks(int C, int V) { return (C + V - 1) / V; }

void pack_blocks(int16_t* dst, const QDwConvArgs& a, int V, bool overlap_tail) {
  const int C = a.C, nb = dw_blocks(C, V);
  for (int b = 0; b < nb; ++b) {
    int c0 = b * V;
    if (overlap_tail && c0 + V > C) c0 = C > V ? C - V : 0;
    int16_t* d = dst + size_t(b) * V * 10;
    for (int p = 0; p < 5; ++p)
      for (int h = 0; h < 2; ++h)
        for (int i = 0; i < V / 2; ++i)
          for (int j = 0; j < 2; ++j) {
            const int tap = 2 * p + j, c = c0 + (i / 4) * 8 + 4 * h + i % 4;
            *d++ = (tap < 9 && c < C) ? a.weight[tap * C + c] : 0;
          }
  }
}

}  // namespace

size_t pack_dwconv_3x3_bytes__avx2(int C) { return size_t(dw_blocks(C, 16)) * 16 * 20; }
void pack_dwconv_3x3__avx2(void* dst, const QDwConvArgs& a) { pack_blocks(static_cast<int16_t*>(dst), a, 16, true); }
size_t pack_dwconv_3x3_bytes__avx512vnni(int C) { return size_t(dw_blocks(C, 32)) * 32 * 20; }
void pack_dwconv_3x3__avx512vnni(void* dst, const QDwConvArgs& a) {
  pack_blocks(static_cast<int16_t*>(dst), a, 32, false);
}

void pack_dwconv_3x3_channels(int32_t* bias_packed, int32_t* rq_multiplier, int32_t* rq_lshift, int32_t* rq_rshift,
                              uint8_t* zero_row, const QDwConvArgs& a) {
  const int C = a.C, Cp = dwconv_padded_channels(C);
  for (int c = 0; c < Cp; ++c) {
    if (c >= C) {
      bias_packed[c] = rq_multiplier[c] = rq_lshift[c] = rq_rshift[c] = 0;
      continue;
    }
    uint32_t wsum = 0;
    for (int t = 0; t < 9; ++t) wsum += static_cast<uint32_t>(a.weight[t * C + c]);
    // wrapping, as the accumulators: bias - in_zp * sum(w)
    bias_packed[c] =
        static_cast<int32_t>((a.bias ? static_cast<uint32_t>(a.bias[c]) : 0u) - static_cast<uint32_t>(a.in_zp) * wsum);
    const FixedPointMultiplier m = a.requant[c];
    rq_multiplier[c] = m.multiplier;
    rq_lshift[c] = m.shift > 0 ? m.shift : 0;
    rq_rshift[c] = m.shift > 0 ? 0 : -m.shift;
  }
  std::memset(zero_row, a.in_zp, size_t(Cp));
}

}  // namespace qforge::quant
