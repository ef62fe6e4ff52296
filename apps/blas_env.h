// Picks OpenBLAS's kernels for this CPU before OpenBLAS starts.
//
// Debian's OpenBLAS 0.3.21 takes AVX-512 CPUs newer than it knows (Zen 4/5)
// for Haswell and runs its AVX2 kernels; its SkylakeX kernels are about 1.5x
// faster there. OpenBLAS reads OPENBLAS_CORETYPE once, when it loads, so the
// process re-executes itself once with the variable set. The option blas_coretype
// (QFORGE_BLAS_CORETYPE, core/options.h)
// chooses another core (or "keep" to leave the environment alone).
#pragma once

namespace qforge::apps {

// Returns normally when nothing needs to change; otherwise does not return.
void ensure_blas_coretype(char** argv);

}  // namespace qforge::apps
