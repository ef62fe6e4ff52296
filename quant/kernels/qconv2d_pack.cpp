// Weight packing for the SIMD conv kernels (generic code: it runs once, at load time).
// The layouts are described in kernels.h next to the ConvPackFn type.
#include <cstring>
#include <string>

#include "core/error.h"
#include "quant/kernels/kernels.h"

namespace qforge::quant {
namespace {

// The argument layout both packings assume (kernels.h): checked, since a mismatch would write
// outside the buffer or leave channels unpacked.
void check_pack_args(const QConvArgs& a, const char* what) {
  const int kt = a.row_merged ? a.KW * a.C : a.C, taps = a.row_merged ? a.KH : a.KH * a.KW;
  QF_CHECK(a.OCp == (a.OC + kConvOcAlign - 1) / kConvOcAlign * kConvOcAlign && a.kt == kt && a.taps == taps &&
               a.ktp == (a.kt + kConvKGroup - 1) / kConvKGroup * kConvKGroup,
           std::string(what) + ": packing arguments off the layout: OC " + std::to_string(a.OC) + " OCp " +
               std::to_string(a.OCp) + ", taps " + std::to_string(a.taps) + ", kt " + std::to_string(a.kt) + " ktp " +
               std::to_string(a.ktp));
}

// The panels written must tile [0, bytes) exactly.
void check_tiled(size_t written, size_t bytes, const char* what) {
  QF_CHECK(written == bytes, std::string(what) + ": panels cover " + std::to_string(written) + " bytes, the layout " +
                                 std::to_string(bytes));
}

// Weight of channel oc (0 beyond OC) at slice position k of tap t (0 beyond kt).
inline int8_t wk(const QConvArgs& a, int oc, int t, int k) {
  if (oc >= a.OC || k >= a.kt) return 0;
  return a.weight[(int64_t(oc) * a.taps + t) * a.kt + k];  // (OC, KH, KW, C) = (OC, taps, kt)
}

}  // namespace

size_t pack_conv_bytes__avx512vnni(const QConvArgs& a) { return conv_packed_elems(a.OCp, a.taps, a.ktp); }

void pack_conv__avx512vnni(void* dst, const QConvArgs& a) {
  check_pack_args(a, "pack_conv__avx512vnni");
  int8_t* d = static_cast<int8_t*>(dst);
  const int kg = a.ktp / kConvKGroup;
  size_t written = 0;
  for (int p0 = 0; p0 < a.OCp; p0 += kConvPanelOc__avx512vnni) {
    const int pw = a.OCp - p0 < kConvPanelOc__avx512vnni ? a.OCp - p0 : kConvPanelOc__avx512vnni;
    int8_t* panel = d + int64_t(p0) * a.taps * a.ktp;
    check_tiled(written, size_t(p0) * a.taps * a.ktp, "pack_conv__avx512vnni");
    written += size_t(pw) * a.taps * a.ktp;
    for (int t = 0; t < a.taps; ++t)
      for (int g = 0; g < kg; ++g)
        for (int o = 0; o < pw; ++o)
          for (int j = 0; j < 4; ++j) panel[((int64_t(t) * kg + g) * pw + o) * 4 + j] = wk(a, p0 + o, t, 4 * g + j);
  }
  check_tiled(written, pack_conv_bytes__avx512vnni(a), "pack_conv__avx512vnni");
}

size_t pack_conv_bytes__avx2(const QConvArgs& a) { return conv_packed_elems(a.OCp, a.taps, a.ktp) * sizeof(int16_t); }

void pack_conv__avx2(void* dst, const QConvArgs& a) {
  check_pack_args(a, "pack_conv__avx2");
  int16_t* d = static_cast<int16_t*>(dst);
  const int kg = a.ktp / kConvKGroup;
  size_t written = 0;
  for (int p0 = 0; p0 < a.OCp; p0 += kConvPanelOc__avx2) {
    int16_t* panel = d + int64_t(p0) * a.taps * a.ktp;
    check_tiled(written, size_t(p0) * a.taps * a.ktp * sizeof(int16_t), "pack_conv__avx2");
    written += size_t(kConvPanelOc__avx2) * a.taps * a.ktp * sizeof(int16_t);
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
  check_tiled(written, pack_conv_bytes__avx2(a), "pack_conv__avx2");
}

}  // namespace qforge::quant
