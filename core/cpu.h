// CPU feature detection from CPUID, for run-time dispatch.
#pragma once
#include <string>

namespace qforge {

struct CpuFeatures {
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512vnni = false;
  bool has_avx2() const { return avx2 && fma; }
  bool has_avx512vnni() const { return avx512f && avx512bw && avx512dq && avx512vl && avx512vnni; }
};

const CpuFeatures& cpu_features();
std::string cpu_summary();  // e.g. "avx2 avx512vnni"

}  // namespace qforge
