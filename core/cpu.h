// The CPU's features (CPUID, probed once) and the one instruction-set level
// every kernel table, float and int8, chooses from.
//
// Levels are ordered; each includes the ones below it:
//   scalar      portable C++, the definition of every kernel's bits
//   avx2        AVX2 + FMA + F16C
//   avx512      AVX-512 F + BW + DQ + VL
//   avx512vnni  avx512 + VNNI
// The selected level is the CPU's best, capped by the option `isa`
// (QFORGE_ISA, core/options.h). A table picks its highest level <= selected.
#pragma once
#include <string>
#include <vector>

namespace qforge {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512vnni = false;
  bool has_avx2() const { return avx2 && fma && f16c; }
  bool has_avx512() const { return has_avx2() && avx512f && avx512bw && avx512dq && avx512vl; }
  bool has_avx512vnni() const { return has_avx512() && avx512vnni; }
};

const CpuFeatures& cpu_features();
std::string cpu_feature_list();  // the features probed, e.g. "avx2 fma f16c avx512f ..."

enum class Isa { scalar, avx2, avx512, avx512vnni };
constexpr Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::avx512vnni};

const char* isa_name(Isa isa);      // "scalar", "avx2", "avx512", "avx512vnni"
bool isa_supported(Isa isa);        // by this CPU
Isa best_isa();                     // the highest level this CPU supports
std::vector<Isa> supported_isas();  // ascending
std::string cpu_summary();          // isa_name(best_isa())

// The level for a cap (an isa_name, or null / "" for none): min(best_isa(), cap).
// Throws qforge::Error naming `variable` and the value when it is unknown or
// the CPU lacks it. Exposed for tests; selected_isa() applies it to QFORGE_ISA.
Isa choose_isa(const char* cap, const char* variable = "QFORGE_ISA");

// The level every kernel table uses (read once, at first use).
Isa selected_isa();

}  // namespace qforge
