#include "apps/blas_env.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/cpu.h"

namespace qforge::apps {

void ensure_blas_coretype(char** argv) {
  if (std::getenv("QFORGE_BLAS_REEXEC")) return;  // already done once
  const char* want = std::getenv("QFORGE_BLAS_CORETYPE");
  std::string core;
  if (want) {
    core = want;
  } else {
    const auto& f = cpu_features();
    if (!(f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl)) return;
    core = "SkylakeX";
  }
  if (core == "keep") return;
  const char* cur = std::getenv("OPENBLAS_CORETYPE");
  if (cur && core == cur) return;
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  setenv("QFORGE_BLAS_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): carry on with the kernels OpenBLAS chose.
}

}  // namespace qforge::apps
