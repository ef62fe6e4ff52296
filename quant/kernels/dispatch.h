// The one place that chooses an ISA for the int8 kernels.
//
// At first use the best level the CPU supports is selected from CPUID
// (avx512vnni > avx2 > scalar); the environment variable
// QFORGE_ISA=scalar|avx2|avx512vnni forces a level (an Error if the CPU lacks
// it or the value is unknown). kernels() returns the table of the selected
// level; kernels_for(isa) any supported level (tests walk them all).
#pragma once
#include <string>
#include <vector>

#include "quant/kernels/kernels.h"

namespace qforge::quant {

enum class Isa { scalar, avx2, avx512vnni };

const char* isa_name(Isa isa);  // "scalar", "avx2", "avx512vnni"
bool isa_supported(Isa isa);    // by this CPU
std::vector<Isa> supported_isas();

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
  QAddKernel qadd;
  QMaxPool2dKernel qmaxpool2d;
  QGlobalAvgPoolKernel qglobal_avgpool;
  QuantizeKernel quantize;
  DequantizeKernel dequantize;
};

// The table of the selected level (cached after the first call).
const KernelTable& kernels();
Isa selected_isa();
// The table of a given level; throws qforge::Error if this CPU does not support it.
const KernelTable& kernels_for(Isa isa);

// What selection would do for a given QFORGE_ISA value (null or "" = not set). Throws on unknown
// names and on levels this CPU lacks. Exposed for tests.
Isa choose_isa(const char* env_value);

}  // namespace qforge::quant
