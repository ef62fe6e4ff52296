#include "quant/kernels/dispatch.h"

#include <cstdlib>
#include <string>

#include "core/cpu.h"
#include "core/error.h"

namespace qforge::quant {
namespace {

constexpr KernelTable kScalar = {
    .isa = Isa::scalar,
    .name = "scalar",
    .qconv2d = qconv2d__ref,
    .qconv2d_name = "qconv2d__ref",
    .conv_mr = 1,
    .conv_panel_oc = 1,
    .conv_chunk_tiles = 1,
    .conv_packed_bytes = nullptr,
    .conv_pack = nullptr,
    .qconv2d_pos = nullptr,
    .conv_fused_add = false,
    .qadd = qadd__ref,
    .qmaxpool2d = qmaxpool2d__ref,
    .qglobal_avgpool = qglobal_avgpool__ref,
    .quantize = quantize__ref,
    .dequantize = dequantize__ref,
};

constexpr KernelTable kAvx2 = {
    .isa = Isa::avx2,
    .name = "avx2",
    .qconv2d = qconv2d__avx2,
    .qconv2d_name = "qconv2d_4x16__avx2",
    .conv_mr = 4,
    .conv_panel_oc = 16,
    .conv_chunk_tiles = 24,
    .conv_packed_bytes = pack_conv_bytes__avx2,
    .conv_pack = pack_conv__avx2,
    .qconv2d_pos = nullptr,
    .conv_fused_add = false,
    .qadd = qadd__avx2,
    .qmaxpool2d = qmaxpool2d__avx2,
    .qglobal_avgpool = qglobal_avgpool__avx2,
    .quantize = quantize__avx2,
    .dequantize = dequantize__avx2,
};

constexpr KernelTable kAvx512Vnni = {
    .isa = Isa::avx512vnni,
    .name = "avx512vnni",
    .qconv2d = qconv2d__avx512vnni,
    .qconv2d_name = "qconv2d_6x64__avx512vnni",
    .conv_mr = 6,
    .conv_panel_oc = 64,
    .conv_chunk_tiles = 16,
    .conv_packed_bytes = pack_conv_bytes__avx512vnni,
    .conv_pack = pack_conv__avx512vnni,
    .qconv2d_pos = qconv2d_pos__avx512vnni,
    .conv_fused_add = true,
    .qadd = qadd__avx512vnni,
    .qmaxpool2d = qmaxpool2d__avx512vnni,
    .qglobal_avgpool = qglobal_avgpool__avx512vnni,
    .quantize = quantize__avx512vnni,
    .dequantize = dequantize__avx512vnni,
};

// The packed weight layouts (kernels.h, pack_conv__*) are built for these panel widths and
// packers: a table that changes one without the other does not compile.
static_assert(kAvx2.conv_panel_oc == kConvPanelOc__avx2 && kAvx2.conv_packed_bytes == pack_conv_bytes__avx2 &&
              kAvx2.conv_pack == pack_conv__avx2);
static_assert(kAvx512Vnni.conv_panel_oc == kConvPanelOc__avx512vnni &&
              kAvx512Vnni.conv_packed_bytes == pack_conv_bytes__avx512vnni &&
              kAvx512Vnni.conv_pack == pack_conv__avx512vnni);
static_assert(kScalar.conv_packed_bytes == nullptr && kScalar.conv_pack == nullptr,
              "the scalar reference reads the (OC,KH,KW,C) weights");

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512vnni:
      return "avx512vnni";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
      return cpu_features().has_avx2();
    case Isa::avx512vnni:
      return cpu_features().has_avx512vnni();
  }
  return false;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512vnni})
    if (isa_supported(i)) v.push_back(i);
  return v;
}

Isa choose_isa(const char* env_value) {
  if (env_value == nullptr || *env_value == '\0') {
    if (isa_supported(Isa::avx512vnni)) return Isa::avx512vnni;
    if (isa_supported(Isa::avx2)) return Isa::avx2;
    return Isa::scalar;
  }
  const std::string v = env_value;
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512vnni}) {
    if (v != isa_name(i)) continue;
    QF_CHECK(isa_supported(i), "QFORGE_ISA=" + v + ": this CPU does not support it (it has: " + cpu_summary() + ")");
    return i;
  }
  throw Error("QFORGE_ISA=" + v + ": unknown ISA level (expected scalar, avx2 or avx512vnni)");
}

const KernelTable& kernels_for(Isa isa) {
  QF_CHECK(isa_supported(isa),
           std::string("int8 kernels: ISA ") + isa_name(isa) + " not supported by this CPU (" + cpu_summary() + ")");
  switch (isa) {
    case Isa::avx2:
      return kAvx2;
    case Isa::avx512vnni:
      return kAvx512Vnni;
    case Isa::scalar:
      break;
  }
  return kScalar;
}

Isa selected_isa() {
  static const Isa isa = choose_isa(std::getenv("QFORGE_ISA"));
  return isa;
}

const KernelTable& kernels() { return kernels_for(selected_isa()); }

}  // namespace qforge::quant
