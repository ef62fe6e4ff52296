#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/ops/gemm_f32.h"
#include "core/threads.h"

using namespace qforge;

namespace {

struct Problem {
  int m, n, k;
  int64_t lda, ldb, ldc;
  std::vector<float> a, b;
};

// Strides longer than the rows, so a kernel that reads or writes past a row is caught.
Problem make_problem(int m, int n, int k, std::mt19937& rng) {
  Problem p{m, n, k, k + 3, n + 5, n + 7, {}, {}};
  std::normal_distribution<float> d;
  p.a.resize(static_cast<size_t>(m) * p.lda);
  p.b.resize(static_cast<size_t>(k) * p.ldb);
  for (float& x : p.a) x = d(rng);
  for (float& x : p.b) x = d(rng);
  return p;
}

// C filled with NaN: the gaps between rows must stay NaN, every element of C must be written.
std::vector<float> nan_c(const Problem& p) {
  return std::vector<float>(static_cast<size_t>(p.m) * p.ldc, std::numeric_limits<float>::quiet_NaN());
}

}  // namespace

TEST_CASE("gemm_f32_ref: a chain of fused multiply-adds close to the exact product") {
  std::mt19937 rng(7);
  Problem p = make_problem(9, 21, 70, rng);
  std::vector<float> c = nan_c(p);
  gemm_f32__ref(p.m, p.n, p.k, p.a.data(), p.lda, p.b.data(), p.ldb, c.data(), p.ldc);
  for (int i = 0; i < p.m; ++i)
    for (int j = 0; j < p.n; ++j) {
      double want = 0, mag = 0;
      for (int q = 0; q < p.k; ++q) {
        want += double(p.a[i * p.lda + q]) * p.b[q * p.ldb + j];
        mag += std::fabs(double(p.a[i * p.lda + q]) * p.b[q * p.ldb + j]);
      }
      REQUIRE(std::fabs(c[i * p.ldc + j] - want) <= 1e-6 * mag);
    }
}

// Sizes around the tile (6 rows, 64 columns in vectors of 16) and the k-block
// (128), and around the threaded driver's blocks (24 rows, 64-256 columns).
TEST_CASE("gemm_f32: each SIMD kernel, alone and threaded, gives the reference's bits") {
  for (Isa isa : kAllIsas)
    if (!isa_supported(isa)) MESSAGE("skipped: this CPU has no ", isa_name(isa));
  std::mt19937 rng(11);
  const int ms[] = {1, 5, 6, 7, 12, 25, 49}, ns[] = {1, 7, 8, 9, 15, 16, 17, 49, 64, 65, 196, 300},
            ks[] = {1, 2, 127, 129, 300};
  GemmF32Kernel tested = nullptr;
  for (Isa isa : supported_isas()) {
    const GemmF32Kernel kernel = float_kernels_for(isa).gemm_f32;
    if (kernel == nullptr || kernel == tested) continue;  // OpenBLAS, or the level below's kernel
    tested = kernel;
    const char* name = float_kernels_for(isa).gemm_f32_name;
    CAPTURE(name);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (int m : ms)
        for (int n : ns)
          for (int k : ks) {
            CAPTURE(m);
            CAPTURE(n);
            CAPTURE(k);
            Problem p = make_problem(m, n, k, rng);
            std::vector<float> want = nan_c(p), leaf = nan_c(p), driver = nan_c(p);
            gemm_f32__ref(m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, want.data(), p.ldc);
            kernel(m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, leaf.data(), p.ldc);
            gemm_f32(kernel, m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, driver.data(), p.ldc);
            // memcmp: NaN gaps compare equal bit for bit, and -0 differs from +0.
            REQUIRE(std::memcmp(want.data(), leaf.data(), want.size() * sizeof(float)) == 0);
            REQUIRE(std::memcmp(want.data(), driver.data(), want.size() * sizeof(float)) == 0);
          }
    }
  }
  set_num_threads(1);
}

TEST_CASE("gemm_f32: the level's kernel by default, QFORGE_GEMM forces one") {
  for (Isa isa : supported_isas()) {
    CAPTURE(isa_name(isa));
    const GemmF32Kernel want = isa >= Isa::avx512 ? gemm_f32_6x64__avx512 : nullptr;
    CHECK((gemm_f32_choose(GemmChoice::automatic, isa) == want));
    CHECK((gemm_f32_choose(GemmChoice::openblas, isa) == nullptr));
    if (isa >= Isa::avx512)
      CHECK(std::string(gemm_f32_name(gemm_f32_choose(GemmChoice::avx512, isa))) == "gemm_f32_6x64__avx512");
    else
      CHECK_THROWS_WITH_AS(gemm_f32_choose(GemmChoice::avx512, isa), doctest::Contains("QFORGE_GEMM=avx512"), Error);
  }
  CHECK(std::string(gemm_f32_name(nullptr)) == "openblas");
  CHECK((gemm_f32_kernel() == gemm_f32_choose(options().gemm, selected_isa())));
}
