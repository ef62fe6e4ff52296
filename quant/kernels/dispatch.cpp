#include "quant/kernels/dispatch.h"

#include <string>

#include "core/cpu.h"
#include "core/error.h"
#include "quant/kernels/fake_quant.h"

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
    .qdwconv2d_3x3 = qdwconv2d_3x3__ref,
    .qdwconv2d_3x3_name = "qdwconv2d_3x3__ref",
    .dwconv_packed_bytes = nullptr,
    .dwconv_pack = nullptr,
    .qadd = qadd__ref,
    .qmaxpool2d = qmaxpool2d__ref,
    .qglobal_avgpool = qglobal_avgpool__ref,
    .quantize = quantize__ref,
    .dequantize = dequantize__ref,
};

constexpr KernelTable kAvx2 = {
    .isa = Isa::avx2,
    .name = "avx2",
    .qconv2d = qconv2d_4x16__avx2,
    .qconv2d_name = "qconv2d_4x16__avx2",
    .conv_mr = 4,
    .conv_panel_oc = 16,
    .conv_chunk_tiles = 24,
    .conv_packed_bytes = pack_conv_bytes__avx2,
    .conv_pack = pack_conv__avx2,
    .qconv2d_pos = nullptr,
    .conv_fused_add = false,
    .qdwconv2d_3x3 = qdwconv2d_3x3__avx2,
    .qdwconv2d_3x3_name = "qdwconv2d_3x3__avx2",
    .dwconv_packed_bytes = pack_dwconv_3x3_bytes__avx2,
    .dwconv_pack = pack_dwconv_3x3__avx2,
    .qadd = qadd__avx2,
    .qmaxpool2d = qmaxpool2d__avx2,
    .qglobal_avgpool = qglobal_avgpool__avx2,
    .quantize = quantize__avx2,
    .dequantize = dequantize__avx2,
};

// No VNNI: the avx2 convolutions (GEMM and depthwise), the AVX-512 element-wise kernels.
constexpr KernelTable kAvx512 = {
    .isa = Isa::avx512,
    .name = "avx512",
    .qconv2d = qconv2d_4x16__avx2,
    .qconv2d_name = "qconv2d_4x16__avx2",
    .conv_mr = 4,
    .conv_panel_oc = 16,
    .conv_chunk_tiles = 24,
    .conv_packed_bytes = pack_conv_bytes__avx2,
    .conv_pack = pack_conv__avx2,
    .qconv2d_pos = nullptr,
    .conv_fused_add = false,
    .qdwconv2d_3x3 = qdwconv2d_3x3__avx2,
    .qdwconv2d_3x3_name = "qdwconv2d_3x3__avx2",
    .dwconv_packed_bytes = pack_dwconv_3x3_bytes__avx2,
    .dwconv_pack = pack_dwconv_3x3__avx2,
    .qadd = qadd__avx512,
    .qmaxpool2d = qmaxpool2d__avx512,
    .qglobal_avgpool = qglobal_avgpool__avx512,
    .quantize = quantize__avx512,
    .dequantize = dequantize__avx512,
};

constexpr KernelTable kAvx512Vnni = {
    .isa = Isa::avx512vnni,
    .name = "avx512vnni",
    .qconv2d = qconv2d_6x64__avx512vnni,
    .qconv2d_name = "qconv2d_6x64__avx512vnni",
    .conv_mr = 6,
    .conv_panel_oc = 64,
    .conv_chunk_tiles = 16,
    .conv_packed_bytes = pack_conv_bytes__avx512vnni,
    .conv_pack = pack_conv__avx512vnni,
    .qconv2d_pos = qconv2d_pos__avx512vnni,
    .conv_fused_add = true,
    .qdwconv2d_3x3 = qdwconv2d_3x3__avx512vnni,
    .qdwconv2d_3x3_name = "qdwconv2d_3x3__avx512vnni",
    .dwconv_packed_bytes = pack_dwconv_3x3_bytes__avx512vnni,
    .dwconv_pack = pack_dwconv_3x3__avx512vnni,
    .qadd = qadd__avx512,
    .qmaxpool2d = qmaxpool2d__avx512,
    .qglobal_avgpool = qglobal_avgpool__avx512,
    .quantize = quantize__avx512,
    .dequantize = dequantize__avx512,
};

// The packed weight layouts (kernels.h, pack_conv__*) are built for these panel widths and
// packers: a table that changes one without the other does not compile.
static_assert(kAvx512.conv_pack == kAvx2.conv_pack);
static_assert(kAvx2.conv_panel_oc == kConvPanelOc__avx2 && kAvx2.conv_packed_bytes == pack_conv_bytes__avx2 &&
              kAvx2.conv_pack == pack_conv__avx2);
static_assert(kAvx512Vnni.conv_panel_oc == kConvPanelOc__avx512vnni &&
              kAvx512Vnni.conv_packed_bytes == pack_conv_bytes__avx512vnni &&
              kAvx512Vnni.conv_pack == pack_conv__avx512vnni);
// A depthwise kernel reads the layout of its own packer.
static_assert(kAvx2.qdwconv2d_3x3 == qdwconv2d_3x3__avx2 && kAvx2.dwconv_pack == pack_dwconv_3x3__avx2 &&
              kAvx512.qdwconv2d_3x3 == qdwconv2d_3x3__avx2 && kAvx512.dwconv_pack == pack_dwconv_3x3__avx2 &&
              kAvx512Vnni.qdwconv2d_3x3 == qdwconv2d_3x3__avx512vnni &&
              kAvx512Vnni.dwconv_pack == pack_dwconv_3x3__avx512vnni);
static_assert(kScalar.dwconv_packed_bytes == nullptr && kScalar.dwconv_pack == nullptr,
              "the scalar depthwise reference reads the (3,3,C) weights");
static_assert(kScalar.conv_packed_bytes == nullptr && kScalar.conv_pack == nullptr,
              "the scalar reference reads the (OC,KH,KW,C) weights");

const KernelTable& table_at_or_below(Isa isa) {
  switch (isa) {
    case Isa::avx512vnni:
      return kAvx512Vnni;
    case Isa::avx512:
      return kAvx512;
    case Isa::avx2:
      return kAvx2;
    case Isa::scalar:
      break;
  }
  return kScalar;
}

}  // namespace

std::vector<Isa> table_isas() {
  std::vector<Isa> v;
  for (Isa i : supported_isas())
    if (table_at_or_below(i).isa == i) v.push_back(i);
  return v;
}

const KernelTable& kernels_for(Isa isa) {
  QF_CHECK(isa_supported(isa),
           std::string("int8 kernels: ISA ") + isa_name(isa) + " not supported by this CPU (" + cpu_summary() + ")");
  return table_at_or_below(isa);
}

const KernelTable& kernels() {
  static const KernelTable& k = kernels_for(selected_isa());
  return k;
}

}  // namespace qforge::quant

namespace qforge::quant::fq {

// The float fake-quantization kernels: AVX2 from level avx2 up (there is no AVX-512 version).
const FakeQuantKernels& fake_quant_kernels_for(Isa isa) {
  QF_CHECK(isa_supported(isa), std::string("fake_quant kernels: ISA ") + isa_name(isa) +
                                   " not supported by this CPU (" + cpu_summary() + ")");
  return isa >= Isa::avx2 ? fake_quant__avx2 : fake_quant__ref;
}

const FakeQuantKernels& fake_quant_kernels() {
  static const FakeQuantKernels& k = fake_quant_kernels_for(selected_isa());
  return k;
}

}  // namespace qforge::quant::fq
