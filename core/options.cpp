#include "core/options.h"

#include <cctype>
#include <cstdlib>

#include "core/error.h"

namespace qforge {
namespace {

std::string value_of(const EnvFn& env, const char* name) {
  const char* v = env(name);
  return v ? std::string(v) : std::string();
}

[[noreturn]] void bad(const char* variable, const std::string& value, const char* expected) {
  throw Error(std::string(variable) + "=" + value + ": unknown value (expected " + expected + ")");
}

WinogradMode parse_winograd(const std::string& v) {
  if (v.empty() || v == "auto") return WinogradMode::automatic;
  if (v == "off" || v == "0") return WinogradMode::off;  // "0": the variable's older spelling
  bad("QFORGE_WINOGRAD", v, "auto or off");
}

GemmChoice parse_gemm(const std::string& v) {
  if (v.empty() || v == "auto") return GemmChoice::automatic;
  if (v == "openblas") return GemmChoice::openblas;
  if (v == "avx512") return GemmChoice::avx512;
  bad("QFORGE_GEMM", v, "auto, openblas or avx512");
}

}  // namespace

Options parse_options(const EnvFn& env) {
  Options o;
  o.isa_cap = value_of(env, "QFORGE_ISA");
  o.isa = choose_isa(o.isa_cap.c_str(), "QFORGE_ISA");
  o.winograd = parse_winograd(value_of(env, "QFORGE_WINOGRAD"));
  o.gemm = parse_gemm(value_of(env, "QFORGE_GEMM"));
  // The float GEMM kernel is AVX-512 code: asking for it needs that level.
  QF_CHECK(o.gemm != GemmChoice::avx512 || o.isa >= Isa::avx512,
           std::string("QFORGE_GEMM=avx512: this CPU does not support it or QFORGE_ISA caps it (selected level: ") +
               isa_name(o.isa) + ")");
  o.blas_coretype = value_of(env, "QFORGE_BLAS_CORETYPE");
  if (o.blas_coretype == "auto") o.blas_coretype.clear();
  for (char ch : o.blas_coretype)
    QF_CHECK(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_',
             "QFORGE_BLAS_CORETYPE=" + o.blas_coretype + ": expected auto, keep or an OpenBLAS core name");
  return o;
}

const Options& options() {
  static const Options o = parse_options([](const char* name) { return std::getenv(name); });
  return o;
}

const char* winograd_mode_name(WinogradMode m) { return m == WinogradMode::off ? "off" : "auto"; }

const char* gemm_choice_name(GemmChoice g) {
  switch (g) {
    case GemmChoice::automatic:
      return "auto";
    case GemmChoice::openblas:
      return "openblas";
    case GemmChoice::avx512:
      return "avx512";
  }
  return "?";
}

std::vector<OptionInfo> list_options() {
  const Options& o = options();
  const std::string isa = std::string(isa_name(o.isa)) + (o.isa_cap.empty() ? " (the CPU's best)" : " (capped)");
  return {
      {"isa", "QFORGE_ISA", isa, "scalar|avx2|avx512|avx512vnni",
       "highest instruction set any kernel uses (default: the CPU's best)"},
      {"winograd", "QFORGE_WINOGRAD", winograd_mode_name(o.winograd), "auto|off",
       "Winograd F(4x4,3x3) for 3x3 stride-1 convolutions; off: im2col everywhere"},
      {"gemm", "QFORGE_GEMM", gemm_choice_name(o.gemm), "auto|openblas|avx512",
       "float GEMM of plain products: qforge's AVX-512 kernel (auto at level avx512+) or OpenBLAS"},
      {"blas_coretype", "QFORGE_BLAS_CORETYPE", o.blas_coretype.empty() ? "auto" : o.blas_coretype, "auto|keep|<core>",
       "OpenBLAS kernels the CLI sets (auto: SkylakeX at level avx512+; keep: leave them)"},
  };
}

const char* process_env(const char* name) { return std::getenv(name); }

}  // namespace qforge
