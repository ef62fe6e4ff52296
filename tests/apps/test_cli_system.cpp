// qforge info --system and the options read from the environment, end to end.
#include <string>

#include "cli_util.h"
#include "core/cpu.h"

using namespace qforge;
using namespace qforge::testing;

TEST_CASE("info --system: CPU features, selected ISA, options and kernels") {
  RunResult r = run_qforge("info --system", "QFORGE_BLAS_CORETYPE=keep");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find(std::string("selected isa: ") + isa_name(best_isa())) != std::string::npos);
  for (const char* v : {"QFORGE_ISA", "QFORGE_WINOGRAD", "QFORGE_GEMM", "QFORGE_BLAS_CORETYPE"})
    CHECK(r.out.find(v) != std::string::npos);
  for (const char* k :
       {"fp32_gemm:", "fp32_winograd:", "fp32_conv_taps:", "fake_quant:", "int8_table:", "int8_qconv2d:"})
    CHECK(r.out.find(k) != std::string::npos);
}

TEST_CASE("info --system: QFORGE_ISA caps every table") {
  RunResult r = run_qforge("info --system", "QFORGE_BLAS_CORETYPE=keep QFORGE_ISA=scalar");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("selected isa: scalar") != std::string::npos);
  CHECK(r.out.find("fp32_gemm: openblas") != std::string::npos);
  CHECK(r.out.find("fake_quant: fake_quant__ref") != std::string::npos);
  CHECK(r.out.find("int8_qconv2d: qconv2d__ref") != std::string::npos);
}

TEST_CASE("a bad option value stops the command with the variable and the value") {
  RunResult r = run_qforge("info --system", "QFORGE_ISA=sse9");
  CHECK(r.code == 1);
  CHECK(r.out.find("QFORGE_ISA=sse9") != std::string::npos);
  r = run_qforge("info --system", "QFORGE_WINOGRAD=maybe");
  CHECK(r.code == 1);
  CHECK(r.out.find("QFORGE_WINOGRAD=maybe") != std::string::npos);
}
