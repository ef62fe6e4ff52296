#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/blas.h"
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

// n normal floats.
std::vector<float> normals(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// The sum over p < k of x[p * xs] * y[p * ys] in double, and the sum of the terms' magnitudes (the
// scale of float rounding).
std::pair<double, double> dot_and_magnitude(const float* x, int64_t xs, const float* y, int64_t ys, int k) {
  double sum = 0, mag = 0;
  for (int p = 0; p < k; ++p) {
    const double t = double(x[p * xs]) * y[p * ys];
    sum += t;
    mag += std::fabs(t);
  }
  return {sum, mag};
}

// C filled with NaN: the gaps between rows must stay NaN, every element of C must be written.
std::vector<float> nan_c(const Problem& p) {
  return std::vector<float>(static_cast<size_t>(p.m) * p.ldc, std::numeric_limits<float>::quiet_NaN());
}

// Calls f(m, n, k) for every combination of the sizes, on 1 and then on 2 threads.
template <size_t M, size_t N, size_t K, typename F>
void for_each_size(const int (&ms)[M], const int (&ns)[N], const int (&ks)[K], F&& f) {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int m : ms)
      for (int n : ns)
        for (int k : ks) {
          CAPTURE(threads);
          CAPTURE(m);
          CAPTURE(n);
          CAPTURE(k);
          f(m, n, k);
        }
  }
  set_num_threads(1);
}

}  // namespace

TEST_CASE("gemm_f32_ref: a chain of fused multiply-adds close to the exact product") {
  std::mt19937 rng(7);
  Problem p = make_problem(9, 21, 70, rng);
  std::vector<float> c = nan_c(p);
  gemm_f32__ref(p.m, p.n, p.k, p.a.data(), p.lda, p.b.data(), p.ldb, c.data(), p.ldc, nullptr);
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
    for_each_size(ms, ns, ks, [&](int m, int n, int k) {
      Problem p = make_problem(m, n, k, rng);
      std::vector<float> want = nan_c(p), leaf = nan_c(p), driver = nan_c(p);
      gemm_f32__ref(m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, want.data(), p.ldc, nullptr);
      kernel(m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, leaf.data(), p.ldc, nullptr);
      gemm_f32(kernel, m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, driver.data(), p.ldc);
      // memcmp: NaN gaps compare equal bit for bit, and -0 differs from +0.
      REQUIRE(std::memcmp(want.data(), leaf.data(), want.size() * sizeof(float)) == 0);
      REQUIRE(std::memcmp(want.data(), driver.data(), want.size() * sizeof(float)) == 0);
    });
  }
}

// A finish in the stores (kernels.h: GemmF32Kernel's rows): the reference's is the separate pass's
// (bias_clamp__ref, or + bias), each kernel's the reference's, through the threaded driver too, with
// the finish applied once, after the last k-block (k past 128 has several).
TEST_CASE("gemm_f32: a finish in the stores gives the separate pass's bits") {
  std::mt19937 rng(17);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const int ms[] = {1, 6, 7, 25}, ns[] = {1, 16, 17, 49, 64, 65, 196}, ks[] = {0, 1, 16, 128, 129, 300};
  std::vector<float> bias_values = normals(32, rng);
  for (int i = 0; i < 32; i += 5) bias_values[i] = -0.f;
  struct Fin {
    bool bias, relu;
    float hi;
  };
  for (const Fin f : {Fin{true, false, 0.f}, Fin{true, true, inf}, Fin{true, true, 6.f}, Fin{false, true, 6.f},
                      Fin{false, true, 0.5f}}) {
    CAPTURE(f.bias);
    CAPTURE(f.relu);
    CAPTURE(f.hi);
    const ChannelFinish rows{f.bias ? bias_values.data() : nullptr, f.relu, f.hi};
    for_each_size(ms, ns, ks, [&](int m, int n, int k) {
      Problem p = make_problem(m, n, k, rng);
      p.a[0] = nan;                                    // row 0 of C all NaN: the clamp's NaN to 0
      for (int j = 0; j < n && k > 0; j += 3) p.b[j] *= 100.f;  // sums past 6
      std::vector<float> want = nan_c(p), ref = nan_c(p);
      gemm_f32__ref(m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, want.data(), p.ldc, nullptr);
      for (int i = 0; i < m; ++i) {  // the separate pass
        float* row = want.data() + static_cast<size_t>(i) * p.ldc;
        const float bv = f.bias ? bias_values[i] : 0.f;
        if (f.relu)
          bias_clamp__ref(row, row, n, bv, f.hi);
        else
          for (int j = 0; j < n; ++j) row[j] += bv;
      }
      gemm_f32__ref(m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, ref.data(), p.ldc, &rows);
      REQUIRE(std::memcmp(want.data(), ref.data(), want.size() * sizeof(float)) == 0);
      for (Isa isa : supported_isas()) {
        const GemmF32Kernel kernel = float_kernels_for(isa).gemm_f32;
        if (!kernel) continue;  // OpenBLAS: sgemm_rows_finished takes the pass (the next test)
        CAPTURE(float_kernels_for(isa).gemm_f32_name);
        std::vector<float> leaf = nan_c(p), driver = nan_c(p);
        kernel(m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, leaf.data(), p.ldc, &rows);
        gemm_f32(kernel, m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, driver.data(), p.ldc, nullptr, &rows);
        REQUIRE(std::memcmp(want.data(), leaf.data(), want.size() * sizeof(float)) == 0);
        REQUIRE(std::memcmp(want.data(), driver.data(), want.size() * sizeof(float)) == 0);
      }
    });
  }
}

// sgemm_rows_finished gives sgemm_finished's bits with the separate pass on every route: the tile
// (its stores), the depth-vector kernel (n <= 64, k >= 1024) and OpenBLAS (k n past 2M floats of B).
TEST_CASE("sgemm_rows_finished: the bits of the product then the pass, on every route") {
  bool tile = false;
  for (Isa isa : supported_isas()) tile = tile || float_kernels_for(isa).gemm_f32 != nullptr;
  if (!tile) MESSAGE("skipped in part: this CPU has no SIMD GEMM tile (every product takes the pass)");
  std::mt19937 g(19);
  const std::vector<float> bias = normals(40, g);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& [m, n, k] : {std::tuple{25, 196, 144}, std::tuple{40, 49, 1152}, std::tuple{9, 2100, 1000}}) {
      for (const ChannelFinish fin : {ChannelFinish{bias.data(), false, 0.f}, ChannelFinish{bias.data(), true, 6.f},
                                      ChannelFinish{nullptr, true, std::numeric_limits<float>::infinity()}}) {
        CAPTURE(threads);
        CAPTURE(n);
        CAPTURE(k);
        CAPTURE(fin.relu);
        const std::vector<float> a = normals(static_cast<size_t>(m) * k, g), b = normals(static_cast<size_t>(k) * n, g);
        std::vector<float> want(static_cast<size_t>(m) * n), got(want.size());
        auto pass_into = [&](std::vector<float>& c) {
          return [&](int i0, int rows, int j0, int cols) {
            for (int i = i0; i < i0 + rows; ++i) {
              float* row = c.data() + static_cast<size_t>(i) * n + j0;
              const float bv = fin.bias ? fin.bias[i] : 0.f;
              if (fin.relu)
                bias_clamp__ref(row, row, cols, bv, fin.hi);
              else
                for (int j = 0; j < cols; ++j) row[j] += bv;
            }
          };
        };
        sgemm_finished(m, n, k, a.data(), k, b.data(), n, want.data(), n, pass_into(want));
        sgemm_rows_finished(m, n, k, a.data(), k, b.data(), n, got.data(), n, fin, pass_into(got));
        REQUIRE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
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

// B packed in 64-column panels: one panel, panels split over the threads (at least two per thread),
// and rows split (fewer panels), around the tile's 6 rows, 64 columns and 128-deep blocks.
TEST_CASE("gemm_f32_packed: B packed in panels gives the reference's bits, split by panels or by rows") {
  std::mt19937 rng(13);
  const int ms[] = {1, 7, 49, 97, 200}, ns[] = {16, 48, 64, 80, 256, 520}, ks[] = {0, 1, 129, 300};
  for (Isa isa : supported_isas()) {
    const GemmF32Kernel kernel = float_kernels_for(isa).gemm_f32 ? float_kernels_for(isa).gemm_f32 : gemm_f32__ref;
    CAPTURE(gemm_f32_name(kernel));
    for_each_size(ms, ns, ks, [&](int m, int n, int k) {
      Problem p = make_problem(m, n, k, rng);
      std::vector<float> bp(packed_b_floats(n, k), std::numeric_limits<float>::quiet_NaN());
      pack_b(bp.data(), p.b.data(), n, k, p.ldb);
      for (int kk = 0; kk < k; ++kk)  // past n, zeros
        for (int l = n; l < (n + 63) / 64 * 64; ++l)
          REQUIRE(bp[(static_cast<int64_t>(l / 64) * k + kk) * 64 + l % 64] == 0.f);
      std::vector<float> want = nan_c(p), got = nan_c(p);
      gemm_f32__ref(m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, want.data(), p.ldc, nullptr);
      gemm_f32_packed(kernel, m, n, k, p.a.data(), p.lda, bp.data(), got.data(), p.ldc);
      REQUIRE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
    });
  }
}

// The depth-vector GEMM: C = A Bt^T, Bt (n, k) with a stride longer than its rows.
TEST_CASE("gemm_f32_dot__ref: 16 chains summed pairwise, close to the exact product") {
  std::mt19937 rng(5);
  Problem p = make_problem(7, 13, 1100, rng);  // p.b read as Bt (13 rows of 1100, stride lda)
  std::vector<float> bt(static_cast<size_t>(p.n) * p.lda), c = nan_c(p);
  for (float& x : bt) x = std::normal_distribution<float>()(rng);
  gemm_f32_dot__ref(p.m, p.n, p.k, p.a.data(), p.lda, bt.data(), p.lda, c.data(), p.ldc);
  for (int i = 0; i < p.m; ++i)
    for (int j = 0; j < p.n; ++j) {
      double want = 0, mag = 0;
      for (int q = 0; q < p.k; ++q) {
        want += double(p.a[i * p.lda + q]) * bt[j * p.lda + q];
        mag += std::fabs(double(p.a[i * p.lda + q]) * bt[j * p.lda + q]);
      }
      REQUIRE(std::fabs(c[i * p.ldc + j] - want) <= 1e-6 * mag);
    }
  // The order is the stated one. With k = 16 each lane holds one product: 2^25 in lane 0, -2^25 in
  // lane 8, 1 elsewhere. Lanes l and l + 8 first give 0 and seven 2s, then 2 + 4 * 3 = 14; adjacent
  // pairs, or a sequential sum either way, lose the 1s against 2^25 and give 8.
  std::vector<float> a1(16, 1.f), b1(16, 1.f);
  a1[0] = std::ldexp(1.f, 25), a1[8] = -std::ldexp(1.f, 25);
  float got = 0;
  gemm_f32_dot__ref(1, 1, 16, a1.data(), 16, b1.data(), 16, &got, 1);
  CHECK(got == 14.f);
  // Lanes whose chains round to -0 keep it (products of -1e-60): with every lane used, the sum is -0.
  for (int k : {16, 17, 33}) {
    std::vector<float> x(k, 1e-30f), y(k, -1e-30f);
    gemm_f32_dot__ref(1, 1, k, x.data(), k, y.data(), k, &got, 1);
    CHECK(std::signbit(got));
  }
}

// Sizes around the tile (4 rows, 6 columns), the vector of k (16) and the driver's 16-row blocks.
TEST_CASE("gemm_f32_dot: each SIMD kernel, alone and through the driver, gives the reference's bits") {
  std::mt19937 rng(13);
  const int ms[] = {1, 3, 4, 5, 8, 17, 33}, ns[] = {1, 5, 6, 7, 12, 13, 49, 64}, ks[] = {1, 15, 16, 17, 33, 1031};
  GemmF32DotKernel tested = nullptr;
  for (Isa isa : supported_isas()) {
    const GemmF32DotKernel kernel = float_kernels_for(isa).gemm_f32_dot;
    if (kernel == nullptr || kernel == tested) continue;
    tested = kernel;
    CAPTURE(isa_name(isa));
    for_each_size(ms, ns, ks, [&](int m, int n, int k) {
      Problem p = make_problem(m, n, k, rng);  // b (k, n) at stride ldb
      std::vector<float> bt(static_cast<size_t>(n) * (k + 2), std::numeric_limits<float>::quiet_NaN());
      for (int j = 0; j < n; ++j)
        for (int q = 0; q < k; ++q) bt[static_cast<size_t>(j) * (k + 2) + q] = p.b[q * p.ldb + j];
      std::vector<float> want = nan_c(p), leaf = nan_c(p), driver = nan_c(p);
      gemm_f32_dot__ref(m, n, k, p.a.data(), p.lda, bt.data(), k + 2, want.data(), p.ldc);
      kernel(m, n, k, p.a.data(), p.lda, bt.data(), k + 2, leaf.data(), p.ldc);
      gemm_f32_dot(kernel, m, n, k, p.a.data(), p.lda, p.b.data(), p.ldb, driver.data(), p.ldc);
      REQUIRE(std::memcmp(want.data(), leaf.data(), want.size() * sizeof(float)) == 0);
      REQUIRE(std::memcmp(want.data(), driver.data(), want.size() * sizeof(float)) == 0);
    });
    // Chains that round to -0 (products of -1e-60), with k past a multiple of 16: -0, as the reference.
    for (int k : {17, 20, 31, 1031}) {
      CAPTURE(k);
      std::vector<float> x(static_cast<size_t>(5) * k, 1e-30f), y(static_cast<size_t>(7) * k, -1e-30f), c(35, 1.f);
      kernel(5, 7, k, x.data(), k, y.data(), k, c.data(), 7);
      for (float v : c) REQUIRE((v == 0.f && std::signbit(v)));
    }
  }
  if (!tested) MESSAGE("skipped: no level of this CPU has a depth-vector GEMM");
}

TEST_CASE("gemm_f32_dot: the level's kernel where it pays, none with QFORGE_GEMM=openblas") {
  const GemmF32DotKernel want =
      options().gemm == GemmChoice::openblas ? nullptr : float_kernels_for(selected_isa()).gemm_f32_dot;
  CHECK((gemm_f32_dot_kernel() == want));
  CHECK(((float_kernels_for(Isa::scalar).gemm_f32_dot == nullptr)));
  if (isa_supported(Isa::avx512)) CHECK((float_kernels_for(Isa::avx512).gemm_f32_dot == gemm_f32_dot_4x6__avx512));
  CHECK(gemm_f32_dot_pays(512, 49, 4608));
  CHECK_FALSE(gemm_f32_dot_pays(256, 196, 2304));
  CHECK_FALSE(gemm_f32_dot_pays(512, 49, 576));
}

TEST_CASE("sgemm: one row times B^T (a linear layer at batch 1) by matrix-vector products over the threads") {
  std::mt19937 g(11);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& [n, k, ldb] : {std::tuple{1000, 1280, 1280}, std::tuple{200, 7, 9}, std::tuple{3, 300, 301}}) {
      for (const auto& [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{2.f, 1.f}, std::pair{1.f, 0.5f}}) {
        CAPTURE(threads);
        CAPTURE(n);
        CAPTURE(beta);
        const std::vector<float> a = normals(k, g), b = normals(static_cast<size_t>(n) * ldb, g);
        std::vector<float> c0 = normals(n, g);
        // With beta 0, C's old values are not read, NaN or not (BLAS's rule).
        if (beta == 0.f) std::fill(c0.begin(), c0.end(), std::numeric_limits<float>::quiet_NaN());
        std::vector<float> c = c0;
        sgemm(false, true, 1, n, k, alpha, a.data(), k, b.data(), ldb, beta, c.data(), n);
        for (int j = 0; j < n; ++j) {
          auto [want, mag] = dot_and_magnitude(a.data(), 1, b.data() + static_cast<size_t>(j) * ldb, 1, k);
          want = alpha * want + (beta == 0.f ? 0.0 : beta * double(c0[j]));
          REQUIRE(std::fabs(c[j] - want) <= 1e-5 * (mag + (beta == 0.f ? 0.0 : std::fabs(c0[j]))) + 1e-6);
        }
      }
    }
  }
  set_num_threads(1);
}

TEST_CASE("sgemm_finished: every element finished once, after its sum, by qforge's GEMM or after OpenBLAS's") {
  // k x n of 16 K (qforge's 6x64 blocks), 1024 x 64 (the depth-vector GEMM) and 1100 x 2000, past the
  // 8 MB of B that qforge's GEMM reads in place (OpenBLAS's product, then the finish over rows).
  std::mt19937 g(12);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& [m, n, k] : {std::tuple{50, 300, 55}, std::tuple{20, 64, 1024}, std::tuple{9, 2000, 1100}}) {
      CAPTURE(threads);
      CAPTURE(n);
      const std::vector<float> a = normals(static_cast<size_t>(m) * k, g), b = normals(static_cast<size_t>(k) * n, g);
      std::vector<float> c(static_cast<size_t>(m) * n);
      std::vector<int> times(c.size(), 0);
      std::vector<float> seen(c.size());
      sgemm_finished(m, n, k, a.data(), k, b.data(), n, c.data(), n, [&](int i0, int rows, int j0, int cols) {
        for (int i = i0; i < i0 + rows; ++i)
          for (int j = j0; j < j0 + cols; ++j) {
            ++times[static_cast<size_t>(i) * n + j];
            seen[static_cast<size_t>(i) * n + j] = c[static_cast<size_t>(i) * n + j];
          }
      });
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; j += 7) {
          const size_t at = static_cast<size_t>(i) * n + j;
          const auto [want, mag] = dot_and_magnitude(a.data() + static_cast<size_t>(i) * k, 1, b.data() + j, n, k);
          REQUIRE(std::fabs(seen[at] - want) <= 1e-5 * mag + 1e-6);  // the sum was complete when finished
        }
      for (int t : times) REQUIRE(t == 1);
    }
  }
  set_num_threads(1);
}
