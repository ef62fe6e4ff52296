#include "apps/system_report.h"

#include "apps/distributed.h"
#include "core/blas.h"
#include "core/cpu.h"
#include "core/kernels/dispatch.h"
#include "core/ops/gemm_f32.h"
#include "core/options.h"
#include "quant/kernels/dispatch.h"
#include "quant/kernels/fake_quant.h"

namespace qforge::apps {

std::vector<std::pair<std::string, std::string>> chosen_kernels() {
  const quant::KernelTable& q = quant::kernels();
  const FloatKernelTable& f = float_kernels();
  return {
      {"fp32_gemm", gemm_f32_name(gemm_f32_kernel())},
      {"fp32_gemm_dot", gemm_f32_dot_kernel() ? f.gemm_f32_dot_name : "none"},
      {"fp32_winograd", options().winograd == WinogradMode::off ? "off (im2col)" : f.winograd_name},
      {"fp32_conv_taps", options().winograd == WinogradMode::off ? "off (im2col)" : f.conv_taps_name},
      {"fp32_depthwise", f.depthwise->name},
      {"fp32_bias_clamp", f.bias_clamp_name},
      {"fp32_max_pool", f.max_pool_name},
      {"fake_quant", quant::fq::fake_quant_kernels().name},
      {"int8_table", q.name},
      {"int8_qconv2d", q.qconv2d_name},
      {"int8_qdwconv2d_3x3", q.qdwconv2d_3x3_name},
      {"blas_core", blas_core_name()},
  };
}

std::string system_report() {
  std::string s;
  s += "cpu features: " + cpu_feature_list() + "\n";
  s += "cpu best isa: " + cpu_summary() + "\n";
  s += std::string("selected isa: ") + isa_name(selected_isa()) + "\n";
  s += "options:\n";
  for (const OptionInfo& o : list_options())
    s += "  " + o.name + " (" + o.variable + "=" + o.values + "): " + o.value + "\n    " + o.help + "\n";
  s += "kernels:\n";
  for (const auto& [family, name] : chosen_kernels()) s += "  " + family + ": " + name + "\n";
  s += std::string("data-parallel (mpirun -np N qforge train|qat): ") +
       (built_with_mpi() ? "built with MPI" : "not built (no libopenmpi-dev when configured)") + "\n";
  return s;
}

}  // namespace qforge::apps
