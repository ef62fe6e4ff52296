#include "core/cpu.h"

#include <cpuid.h>

#include "core/error.h"
#include "core/options.h"

namespace qforge {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!osxsave) return f;
  unsigned xlo, xhi;
  __asm__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  bool ymm = (xlo & 0x6) == 0x6, zmm = (xlo & 0xe6) == 0xe6;
  f.fma = fma && ymm;
  f.f16c = f16c && ymm;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
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

std::string cpu_feature_list() {
  const auto& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512dq, "avx512dq");
  add(f.avx512vl, "avx512vl");
  add(f.avx512vnni, "avx512vnni");
  return s.empty() ? "none" : s;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::avx512vnni:
      return "avx512vnni";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  const auto& f = cpu_features();
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
      return f.has_avx2();
    case Isa::avx512:
      return f.has_avx512();
    case Isa::avx512vnni:
      return f.has_avx512vnni();
  }
  return false;
}

Isa best_isa() {
  Isa best = Isa::scalar;
  for (Isa i : kAllIsas)
    if (isa_supported(i)) best = i;
  return best;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa i : kAllIsas)
    if (isa_supported(i)) v.push_back(i);
  return v;
}

std::string cpu_summary() { return isa_name(best_isa()); }

Isa choose_isa(const char* cap, const char* variable) {
  if (cap == nullptr || *cap == '\0') return best_isa();
  const std::string v = cap;
  for (Isa i : kAllIsas) {
    if (v != isa_name(i)) continue;
    QF_CHECK(isa_supported(i), std::string(variable) + "=" + v + ": this CPU does not support it (its best level: " +
                                   cpu_summary() + "; features: " + cpu_feature_list() + ")");
    return i;
  }
  throw Error(std::string(variable) + "=" + v + ": unknown ISA level (expected scalar, avx2, avx512 or avx512vnni)");
}

Isa selected_isa() {
  static const Isa isa = options().isa;
  return isa;
}

}  // namespace qforge
