#include "apps/blas_env.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "core/cpu.h"
#include "core/options.h"

namespace qforge::apps {

void ensure_blas_coretype(char** argv) {
  if (process_env("QFORGE_BLAS_REEXEC")) return;  // already done once
  std::string core = options().blas_coretype;
  if (core.empty()) {
    // SkylakeX's kernels need AVX-512 F, BW, DQ and VL: core's level avx512,
    // unless QFORGE_ISA caps the selected level below it.
    if (options().isa < Isa::avx512) return;
    core = "SkylakeX";
  }
  if (core == "keep") return;
  const char* cur = process_env("OPENBLAS_CORETYPE");
  if (cur && core == cur) return;
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  setenv("QFORGE_BLAS_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): carry on with the kernels OpenBLAS chose.
}

}  // namespace qforge::apps
