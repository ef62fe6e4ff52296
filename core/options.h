// The library's run-time switches, in one place. Each is read once, at first
// use, from its environment variable (this is the only code in qforge that
// reads the environment) and validated: a bad value is a qforge::Error naming
// the variable and the value.
//
//   option         variable               values                          default
//   isa            QFORGE_ISA             scalar|avx2|avx512|avx512vnni   the CPU's best
//   winograd       QFORGE_WINOGRAD        auto|off                        auto
//   gemm           QFORGE_GEMM            auto|openblas|avx512            auto
//   blas_coretype  QFORGE_BLAS_CORETYPE   auto|keep|<OpenBLAS core name>  auto
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/cpu.h"

namespace qforge {

enum class WinogradMode { automatic, off };             // off: im2col for every convolution
enum class GemmChoice { automatic, openblas, avx512 };  // the float GEMM for plain products

struct Options {
  Isa isa = Isa::scalar;  // the selected level: the CPU's best, capped by QFORGE_ISA
  std::string isa_cap;    // the variable's value, "" when unset
  WinogradMode winograd = WinogradMode::automatic;
  GemmChoice gemm = GemmChoice::automatic;
  // OpenBLAS's kernels for the CLI (apps/blas_env.cpp): "" chooses from the
  // CPU, "keep" leaves OPENBLAS_CORETYPE alone, anything else is a core name.
  std::string blas_coretype;
};

// Reads each variable through `env` (returns null when unset); validates.
// Exposed for tests, which pass a fake environment.
using EnvFn = std::function<const char*(const char* name)>;
Options parse_options(const EnvFn& env);

// The process's options, parsed once from the environment.
const Options& options();

const char* winograd_mode_name(WinogradMode m);  // "auto", "off"
const char* gemm_choice_name(GemmChoice g);      // "auto", "openblas", "avx512"

// Every option with its variable, current value, accepted values and purpose
// (for `qforge info --system` and `qforge bench`).
struct OptionInfo {
  std::string name, variable, value, values, help;
};
std::vector<OptionInfo> list_options();

// Process state that is not an option: a variable of the process's
// environment as it is now (null when unset). For apps/blas_env.cpp, which
// re-executes the process with OPENBLAS_CORETYPE set.
const char* process_env(const char* name);

}  // namespace qforge
