// Weight packing for the SIMD conv kernels (generic code: it runs once, at load time).
// The layouts are described in kernels.h next to the ConvPackFn type.
#include <cstring>

#include "quant/kernels/kernels.h"

namespace qforge::quant {
namespace {

// Weight of channel oc (0 beyond OC) at slice position k of tap t (0 beyond kt).
inline int8_t wk(const QConvArgs& a, int oc, int t, int k) {
  if (oc >= a.OC || k >= a.kt) return 0;
  return a.weight[(int64_t(oc) * a.taps + t) * a.kt + k];  // (OC, KH, KW, C) = (OC, taps, kt)
}

}  // namespace

size_t pack_conv_bytes__avx512vnni(const QConvArgs& a) { return size_t(a.OCp) * a.taps * a.ktp; }

void pack_conv__avx512vnni(void* dst, const QConvArgs& a) {
  int8_t* d = static_cast<int8_t*>(dst);
  const int kg = a.ktp / 4;
  for (int p0 = 0; p0 < a.OCp; p0 += 64) {
    const int pw = a.OCp - p0 < 64 ? a.OCp - p0 : 64;
    int8_t* panel = d + int64_t(p0) * a.taps * a.ktp;
    for (int t = 0; t < a.taps; ++t)
      for (int g = 0; g < kg; ++g)
        for (int o = 0; o < pw; ++o)
          for (int j = 0; j < 4; ++j) panel[((int64_t(t) * kg + g) * pw + o) * 4 + j] = wk(a, p0 + o, t, 4 * g + j);
  }
}

size_t pack_conv_bytes__avx2(const QConvArgs& a) { return size_t(a.OCp) * a.taps * a.ktp * sizeof(int16_t); }

void pack_conv__avx2(void* dst, const QConvArgs& a) {
  int16_t* d = static_cast<int16_t*>(dst);
  const int kg = a.ktp / 4;
  for (int p0 = 0; p0 < a.OCp; p0 += 16) {
    int16_t* panel = d + int64_t(p0) * a.taps * a.ktp;
    for (int t = 0; t < a.taps; ++t)
      for (int g = 0; g < kg; ++g) {
        int16_t* blk = panel + (int64_t(t) * kg + g) * 64;  // 4 vectors of 8 lanes x 2 int16
        for (int pair = 0; pair < 2; ++pair)
          for (int half = 0; half < 2; ++half)
            for (int i = 0; i < 8; ++i) {
              const int oc = p0 + 8 * half + i;
              int16_t* lane = blk + ((2 * pair + half) * 8 + i) * 2;
              lane[0] = wk(a, oc, t, 4 * g + pair);
              lane[1] = wk(a, oc, t, 4 * g + pair + 2);
            }
      }
  }
}

}  // namespace qforge::quant
