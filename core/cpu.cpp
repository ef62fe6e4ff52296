#include "core/cpu.h"

#include <cpuid.h>

namespace qforge {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool osxsave = c & (1u << 27), fma = c & (1u << 12);
  if (!osxsave) return f;
  unsigned xlo, xhi;
  __asm__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  bool ymm = (xlo & 0x6) == 0x6, zmm = (xlo & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.fma = fma && ymm;
  f.avx2 = (b & (1u << 5)) && ymm;
  f.avx512f = (b & (1u << 16)) && zmm;
  f.avx512dq = (b & (1u << 17)) && zmm;
  f.avx512bw = (b & (1u << 30)) && zmm;
  f.avx512vl = (b & (1u << 31)) && zmm;
  f.avx512vnni = (c & (1u << 11)) && zmm;
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::string cpu_summary() {
  const auto& f = cpu_features();
  if (f.has_avx512vnni()) return "avx512vnni";
  if (f.has_avx2()) return "avx2";
  return "scalar";
}

}  // namespace qforge
