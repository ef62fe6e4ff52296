// The options (core/options.h) and the ISA level (core/cpu.h): parsing,
// validation, capping.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "core/cpu.h"
#include "core/error.h"
#include "core/options.h"

using namespace qforge;

namespace {

Options parse(const std::map<std::string, std::string>& env) {
  return parse_options([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST_CASE("options: defaults with nothing set") {
  const Options o = parse({});
  CHECK(o.isa == best_isa());
  CHECK(o.isa_cap.empty());
  CHECK(o.winograd == WinogradMode::automatic);
  CHECK(o.gemm == GemmChoice::automatic);
  CHECK(o.blas_coretype.empty());
}

TEST_CASE("options: QFORGE_ISA caps the level; unknown or unsupported values are errors naming the value") {
  for (Isa i : kAllIsas) {
    CAPTURE(isa_name(i));
    if (isa_supported(i)) {
      CHECK(parse({{"QFORGE_ISA", isa_name(i)}}).isa == i);
      CHECK(choose_isa(isa_name(i)) == i);
      CHECK(i <= best_isa());
    } else {
      CHECK_THROWS_WITH_AS(parse({{"QFORGE_ISA", isa_name(i)}}), doctest::Contains("does not support"), Error);
      CHECK(i > best_isa());
    }
  }
  CHECK(choose_isa(nullptr) == best_isa());
  CHECK(choose_isa("") == best_isa());
  CHECK(parse({{"QFORGE_ISA", ""}}).isa == best_isa());
  CHECK_THROWS_WITH_AS(parse({{"QFORGE_ISA", "sse9"}}), doctest::Contains("QFORGE_ISA=sse9"), Error);
  CHECK_THROWS_WITH_AS(choose_isa("AVX2"), doctest::Contains("unknown ISA level"), Error);
  // The levels are ordered, each including the ones below.
  for (Isa i : supported_isas())
    for (Isa j : kAllIsas)
      if (j <= i) CHECK(isa_supported(j));
}

TEST_CASE("options: selected_isa is the process's options' level") {
  CHECK(selected_isa() == options().isa);
  CHECK(isa_supported(selected_isa()));
}

TEST_CASE("options: winograd, gemm and blas_coretype validate their values") {
  CHECK(parse({{"QFORGE_WINOGRAD", "off"}}).winograd == WinogradMode::off);
  CHECK(parse({{"QFORGE_WINOGRAD", "0"}}).winograd == WinogradMode::off);
  CHECK(parse({{"QFORGE_WINOGRAD", "auto"}}).winograd == WinogradMode::automatic);
  CHECK_THROWS_WITH_AS(parse({{"QFORGE_WINOGRAD", "yes"}}), doctest::Contains("QFORGE_WINOGRAD=yes"), Error);
  CHECK(parse({{"QFORGE_GEMM", "openblas"}}).gemm == GemmChoice::openblas);
  CHECK_THROWS_WITH_AS(parse({{"QFORGE_GEMM", "avx2"}}), doctest::Contains("QFORGE_GEMM=avx2"), Error);
  if (isa_supported(Isa::avx512)) {
    CHECK(parse({{"QFORGE_GEMM", "avx512"}}).gemm == GemmChoice::avx512);
    // Capped below avx512, the AVX-512 GEMM cannot be forced.
    CHECK_THROWS_WITH_AS(parse({{"QFORGE_GEMM", "avx512"}, {"QFORGE_ISA", "avx2"}}),
                         doctest::Contains("QFORGE_GEMM=avx512"), Error);
  } else {
    CHECK_THROWS_WITH_AS(parse({{"QFORGE_GEMM", "avx512"}}), doctest::Contains("QFORGE_GEMM=avx512"), Error);
  }
  CHECK(parse({{"QFORGE_BLAS_CORETYPE", "auto"}}).blas_coretype.empty());
  CHECK(parse({{"QFORGE_BLAS_CORETYPE", "keep"}}).blas_coretype == "keep");
  CHECK(parse({{"QFORGE_BLAS_CORETYPE", "Haswell"}}).blas_coretype == "Haswell");
  CHECK_THROWS_WITH_AS(parse({{"QFORGE_BLAS_CORETYPE", "a b"}}), doctest::Contains("QFORGE_BLAS_CORETYPE=a b"), Error);
}

TEST_CASE("options: the list names every option with its variable and value") {
  const auto list = list_options();
  REQUIRE(list.size() == 4);
  CHECK(list[0].variable == "QFORGE_ISA");
  CHECK(list[0].value.find(isa_name(options().isa)) == 0);
  CHECK(list[1].variable == "QFORGE_WINOGRAD");
  CHECK(list[2].variable == "QFORGE_GEMM");
  CHECK(list[3].variable == "QFORGE_BLAS_CORETYPE");
}
