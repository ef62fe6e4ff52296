// The int8 kernel tables, one per instruction-set level that has one (scalar,
// avx2, avx512, avx512vnni; core/cpu.h). A level picks the highest table at
// or below it; kernels() is the table of the selected level (core's
// selected_isa(): the CPU's best capped by QFORGE_ISA). The avx512 table is
// the avx2 convolution with the AVX-512 element-wise kernels; the avx512vnni
// table adds the VNNI convolutions. The depthwise 3x3 convolution
// (qdwconv2d.h): reference at scalar, AVX2 at avx2 and avx512, VNNI at avx512vnni.
#pragma once
#include <string>
#include <vector>

#include "core/cpu.h"
#include "quant/kernels/kernels.h"
#include "quant/kernels/qdwconv2d.h"

namespace qforge::quant {

// The level type lives in core; these keep quant::Isa and friends working.
using qforge::Isa;
using qforge::isa_name;
using qforge::isa_supported;
using qforge::selected_isa;

// Levels that have an int8 table and this CPU supports, ascending (tests walk them).
std::vector<Isa> table_isas();

struct KernelTable {
  Isa isa;
  const char* name;
  // Convolution / GEMM. The SIMD kernels work on micro-tiles of conv_mr pixels x conv_panel_oc
  // channels, over chunks of conv_chunk_tiles micro-tiles sharing one indirection array.
  QConv2dKernel qconv2d;
  const char* qconv2d_name;
  int conv_mr, conv_panel_oc, conv_chunk_tiles;
  size_t (*conv_packed_bytes)(const QConvArgs&);  // null: the kernel reads the (OC,KH,KW,C) weights
  ConvPackFn conv_pack;
  QConv2dPosKernel qconv2d_pos;  // batch-major conv, or null
  bool conv_fused_add;           // qconv2d and qconv2d_pos honour QConvArgs::residual
  // Depthwise 3x3 (groups == C == OC): rows of the N*OH output grid.
  QDwConv2dKernel qdwconv2d_3x3;
  const char* qdwconv2d_3x3_name;
  size_t (*dwconv_packed_bytes)(int C);                // null: the kernel reads the (3,3,C) weights
  void (*dwconv_pack)(void* dst, const QDwConvArgs&);  // with dwconv_packed_bytes(C) bytes at dst
  QAddKernel qadd;
  QMaxPool2dKernel qmaxpool2d;
  QGlobalAvgPoolKernel qglobal_avgpool;
  QuantizeKernel quantize;
  DequantizeKernel dequantize;
};

// The table of the selected level (cached after the first call).
const KernelTable& kernels();
// The highest table at or below `isa`; throws qforge::Error if this CPU does not support `isa`.
const KernelTable& kernels_for(Isa isa);

}  // namespace qforge::quant
