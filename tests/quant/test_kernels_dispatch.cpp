// Kernel selection: CPUID, the QFORGE_ISA override, and what was picked.
#include "core/cpu.h"
#include "core/error.h"
#include "test_kernels_util.h"

using namespace qtest;

TEST_CASE("dispatch: picks the best level the CPU has, says which") {
  const auto& f = qforge::cpu_features();
  const Isa best = f.has_avx512vnni() ? Isa::avx512vnni
                   : f.has_avx512()   ? Isa::avx512
                   : f.has_avx2()     ? Isa::avx2
                                      : Isa::scalar;
  CHECK(qforge::choose_isa(nullptr) == best);
  CHECK(qforge::choose_isa("") == best);
  CHECK(isa_supported(Isa::scalar));
  const Isa sel = selected_isa();
  CHECK(&kernels() == &kernels_for(sel));
  CHECK(kernels().isa <= sel);
  CHECK(std::string(kernels().name) == isa_name(kernels().isa));
  MESSAGE("int8 kernels: selected " << iname(sel) << " (" << std::string(kernels().qconv2d_name)
                                    << "); CPU: " << qforge::cpu_summary());
  for (Isa i : {Isa::avx2, Isa::avx512, Isa::avx512vnni}) note_missing(i);
}

TEST_CASE("dispatch: QFORGE_ISA forces a level, errors on unknown or unsupported") {
  CHECK(qforge::choose_isa("scalar") == Isa::scalar);
  CHECK_THROWS_AS(qforge::choose_isa("sse9"), qforge::Error);
  CHECK_THROWS_WITH_AS(qforge::choose_isa("AVX2"), doctest::Contains("unknown ISA"), qforge::Error);
  for (Isa i : {Isa::avx2, Isa::avx512, Isa::avx512vnni}) {
    if (isa_supported(i)) {
      CHECK(qforge::choose_isa(isa_name(i)) == i);
      CHECK(kernels_for(i).isa == i);
    } else {
      CHECK_THROWS_WITH_AS(qforge::choose_isa(isa_name(i)), doctest::Contains("does not support"), qforge::Error);
      CHECK_THROWS_AS(kernels_for(i), qforge::Error);
    }
  }
}

TEST_CASE("dispatch: every level's table is complete") {
  for (Isa i : table_isas()) {
    const KernelTable& k = kernels_for(i);
    CHECK_UNARY(k.qconv2d != nullptr);
    CHECK_UNARY(k.qdwconv2d_3x3 != nullptr);
    CHECK_UNARY(k.qadd != nullptr);
    CHECK_UNARY(k.qmaxpool2d != nullptr);
    CHECK_UNARY(k.qglobal_avgpool != nullptr);
    CHECK_UNARY(k.quantize != nullptr);
    CHECK_UNARY(k.dequantize != nullptr);
    CHECK(k.conv_mr >= 1);
    CHECK_UNARY((k.conv_packed_bytes == nullptr) == (k.conv_pack == nullptr));
    CHECK_UNARY((k.dwconv_packed_bytes == nullptr) == (k.dwconv_pack == nullptr));
  }
}

TEST_CASE("dispatch: each level picks the highest int8 table at or below it") {
  const std::vector<Isa> tables = table_isas();
  for (Isa i : qforge::supported_isas()) {
    Isa want = Isa::scalar;
    for (Isa t : tables)
      if (t <= i) want = t;
    CHECK(kernels_for(i).isa == want);
  }
  // Every level has its own table today; a level without one would fall back to the one below.
  CHECK(tables == qforge::supported_isas());
}
