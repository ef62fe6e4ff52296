#include "core/kernels/dispatch.h"

#include <string>

#include "core/error.h"

namespace qforge {
namespace {

using namespace winograd_detail;

using depthwise_detail::depthwise_planes__avx2;
using depthwise_detail::depthwise_planes__avx512;
using depthwise_detail::depthwise_planes__ref;

constexpr FloatKernelTable kScalar = {Isa::scalar,
                                      "scalar",
                                      nullptr,
                                      "openblas",
                                      nullptr,
                                      "none",
                                      nullptr,
                                      "none",
                                      nullptr,
                                      "none",
                                      &depthwise_planes__ref,
                                      bias_clamp__ref,
                                      "bias_clamp__ref",
                                      max_pool__ref,
                                      "max_pool__ref"};
constexpr FloatKernelTable kAvx2 = {Isa::avx2,
                                    "avx2",
                                    nullptr,
                                    "openblas",
                                    nullptr,
                                    "none",
                                    conv_taps_f32_4x24__avx2,
                                    "conv_taps_f32_4x24__avx2",
                                    &winograd_f4x4_blocks__avx2,
                                    "winograd_f4x4_blocks__avx2",
                                    &depthwise_planes__avx2,
                                    bias_clamp__avx2,
                                    "bias_clamp__avx2",
                                    max_pool__avx2,
                                    "max_pool__avx2"};
constexpr FloatKernelTable kAvx512 = {Isa::avx512,
                                      "avx512",
                                      gemm_f32_6x64__avx512,
                                      "gemm_f32_6x64__avx512",
                                      gemm_f32_dot_4x6__avx512,
                                      "gemm_f32_dot_4x6__avx512",
                                      conv_taps_f32_6x64__avx512,
                                      "conv_taps_f32_6x64__avx512",
                                      &winograd_f4x4_blocks__avx512,
                                      "winograd_f4x4_blocks__avx512",
                                      &depthwise_planes__avx512,
                                      bias_clamp__avx512,
                                      "bias_clamp__avx512",
                                      max_pool__avx512,
                                      "max_pool__avx512"};

const FloatKernelTable& table_at_or_below(Isa isa) {
  switch (isa) {
    case Isa::avx512vnni:  // no float kernel uses VNNI
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

const FloatKernelTable& float_kernels_for(Isa isa) {
  QF_CHECK(isa_supported(isa),
           std::string("float kernels: ISA ") + isa_name(isa) + " not supported by this CPU (" + cpu_summary() + ")");
  return table_at_or_below(isa);
}

const FloatKernelTable& float_kernels() {
  static const FloatKernelTable& t = float_kernels_for(selected_isa());
  return t;
}

const BlockKernels& winograd_blocks_for(Isa isa) {
  const FloatKernelTable& t = float_kernels_for(isa);
  return t.winograd ? *t.winograd : winograd_f4x4_blocks__ref;
}

const BlockKernels& winograd_blocks() {
  static const BlockKernels& k = winograd_blocks_for(selected_isa());
  return k;
}

const char* winograd_blocks_name(Isa isa) {
  const FloatKernelTable& t = float_kernels_for(isa);
  return t.winograd ? t.winograd_name : "winograd_f4x4_blocks__ref";
}

}  // namespace qforge
