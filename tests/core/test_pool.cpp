// Tests of Pooling (core/ops/pool.h).
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/kernels/dispatch.h"
#include "core/ops/pool.h"
#include "core/threads.h"
#include "gradcheck.h"
#include "op_test_util.h"

using namespace qforge;
using qforge::testing::Buffers;
using qforge::testing::gradcheck_error;
using qforge::testing::raw_gradcheck_error;
using qforge::testing::rng;

TEST_CASE("pooling: values and gradients") {
  // Distinct values so the max is unique and finite differences do not cross ties.
  Tensor x = Tensor::empty({2, 3, 7, 6});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 37) % 251) * 0.1f;
  Pool2dArgs mp{3, 3, 2, 2, 1, 1};
  CHECK(gradcheck_error([&](const std::vector<Tensor>& t) { return max_pool2d(t[0], mp); }, {x}, 1e-3f) < 1e-3);
  Pool2dArgs ap{3, 2, 2, 1, 1, 1};
  CHECK(gradcheck_error([&](const std::vector<Tensor>& t) { return avg_pool2d(t[0], ap); }, {x}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return global_avg_pool2d(t[0]); }, {x}) < 1e-3);

  // Without gradients max_pool2d takes another path (no argmax): the same values, against the definition.
  // Wide rows too: windows wholly inside a row take another path than the clipped ones at its ends.
  // On 1 and 2 threads (planes split between them).
  for (int threads : {1, 2})
    for (auto [rn, rc, rh, rw] :
         {std::array<int64_t, 4>{2, 3, 9, 8}, std::array<int64_t, 4>{1, 2, 5, 37}, std::array<int64_t, 4>{1, 3, 11, 9}})
      for (Pool2dArgs pa : {Pool2dArgs{3, 3, 2, 2, 1, 1}, Pool2dArgs{2, 3, 1, 2, 1, 0}, Pool2dArgs{3, 2, 3, 1, 0, 1},
                            Pool2dArgs{2, 2, 2, 2, 0, 0}, Pool2dArgs{1, 5, 1, 3, 0, 2}, Pool2dArgs{3, 3, 1, 1, 1, 1}}) {
        if (pa.kernel_w > rw + 2 * pa.pad_w) continue;
        set_num_threads(threads);
        CAPTURE(threads);
        Tensor r = Tensor::randn({rn, rc, rh, rw}, rng());
        Tensor got;
        {
          NoGradGuard ng;
          got = max_pool2d(r, pa);
        }
        for (int64_t p = 0; p < rn * rc; ++p)
          for (int64_t oh = 0; oh < got.size(2); ++oh)
            for (int64_t ow = 0; ow < got.size(3); ++ow) {
              float want = -INFINITY;
              for (int kh = 0; kh < pa.kernel_h; ++kh)
                for (int kw = 0; kw < pa.kernel_w; ++kw) {
                  const int64_t ih = oh * pa.stride_h - pa.pad_h + kh, iw = ow * pa.stride_w - pa.pad_w + kw;
                  if (ih >= 0 && ih < rh && iw >= 0 && iw < rw)
                    want = std::max(want, r.data()[(p * rh + ih) * rw + iw]);
                }
              REQUIRE(got.data()[(p * got.size(2) + oh) * got.size(3) + ow] == want);
            }
      }
  set_num_threads(1);
  Tensor s = Tensor::from({1, 1, 2, 2}, {1.f, 5.f, -3.f, 2.f});
  CHECK(max_pool2d(s, {2, 2, 2, 2}).item() == 5.f);
  CHECK(avg_pool2d(s, {2, 2, 2, 2}).item() == 1.25f);
  CHECK(global_avg_pool2d(s).item() == 1.25f);
  // Padding counts as zeros in the average (PyTorch's count_include_pad default).
  CHECK(avg_pool2d(Tensor::full({1, 1, 1, 1}, 4.f), {3, 3, 1, 1, 1, 1}).item() == doctest::Approx(4.f / 9));
}

TEST_CASE("pooling raw pairs: backward adds the gradients of forward") {
  // Distinct values, so the max is unique and finite differences do not cross ties.
  std::vector<float> x(2 * 3 * 7 * 6);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 251) * 0.1f;
  const Pool2dShape s{2, 3, 7, 6, 4, 3, Pool2dArgs{3, 3, 2, 2, 1, 1}};
  const int64_t nout = s.n * s.c * s.oh * s.ow;
  auto max_fwd = [&](const Buffers& t) {
    std::vector<float> out(nout);
    std::vector<int32_t> argmax(nout);
    max_pool2d_forward(out.data(), argmax.data(), t[0].data(), s);
    return out;
  };
  auto max_bwd = [&](Buffers& g, const std::vector<float>& dout, const Buffers& t) {
    std::vector<float> out(nout);
    std::vector<int32_t> argmax(nout);
    max_pool2d_forward(out.data(), argmax.data(), t[0].data(), s);
    max_pool2d_backward(g[0].data(), dout.data(), argmax.data(), s);
  };
  CHECK(raw_gradcheck_error(max_fwd, max_bwd, {x}, 1e-3f) < 1e-3);
  auto avg_fwd = [&](const Buffers& t) {
    std::vector<float> out(nout);
    avg_pool2d_forward(out.data(), t[0].data(), s);
    return out;
  };
  auto avg_bwd = [&](Buffers& g, const std::vector<float>& dout, const Buffers&) {
    avg_pool2d_backward(g[0].data(), dout.data(), s);
  };
  CHECK(raw_gradcheck_error(avg_fwd, avg_bwd, {x}) < 1e-3);
  // The forward without argmax gives the same values as with it.
  std::vector<float> plain(nout);
  max_pool2d_forward(plain.data(), nullptr, x.data(), s);
  CHECK(plain == max_fwd({x}));
}

// The order max_pool.inc states: down each column of the window (first row first), then along the
// row of those maxima (first column first), each step std::max's (NaN and -0 kept when first).
static float max_pool_definition(const float* plane, const MaxPoolGeo& g, int64_t oh, int64_t ow) {
  bool any_col = false;
  float best = 0.f;
  for (int kw = 0; kw < g.kw; ++kw) {
    const int64_t iw = ow * g.sw - g.pw + kw;
    if (iw < 0 || iw >= g.w) continue;
    bool any_row = false;
    float col = 0.f;
    for (int kh = 0; kh < g.kh; ++kh) {
      const int64_t ih = oh * g.sh - g.ph + kh;
      if (ih < 0 || ih >= g.h) continue;
      const float v = plane[ih * g.w + iw];
      col = any_row ? std::max(col, v) : v;
      any_row = true;
    }
    best = any_col ? std::max(best, col) : col;
    any_col = true;
  }
  return best;
}

TEST_CASE("max_pool: the reference follows its stated order, every level gives its bits") {
  std::mt19937 gen(11);
  std::normal_distribution<float> d(0.f, 1.f);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  // Values whose order decides the result: NaN, both zeros (max keeps the first of -0 and +0), infinities.
  const float special[] = {nan, -0.f, 0.f, -inf, inf, 0.f, -0.f};
  struct Case {
    int64_t h, w;
    int kh, kw, sh, sw, ph, pw;
  };
  const Case cases[] = {
      {112, 112, 3, 3, 2, 2, 1, 1},  // ResNet's, at its size
      {9, 37, 3, 3, 2, 2, 1, 1},
      {9, 8, 2, 3, 1, 2, 1, 0},
      {11, 9, 3, 2, 3, 1, 0, 1},
      {8, 40, 2, 2, 2, 2, 0, 0},
      {5, 41, 1, 5, 1, 3, 0, 2},
      {7, 33, 3, 3, 1, 1, 1, 1},
      {4, 3, 3, 3, 1, 1, 1, 1},
      {3, 2, 3, 5, 2, 2, 1, 2},
      {6, 17, 5, 5, 4, 3, 2, 2},
      {5, 9, 3, 1, 2, 1, 1, 0},  // one column per window: the first tap copied
      // Widths around the vectors' 16 lanes (and 64 full windows), strides 1 and 2.
      {4, 15, 3, 3, 1, 1, 1, 1},
      {4, 16, 3, 3, 1, 1, 1, 1},
      {4, 17, 3, 3, 2, 2, 1, 1},
      {3, 63, 3, 3, 2, 2, 1, 1},
      {3, 64, 2, 2, 2, 2, 0, 0},
      {3, 65, 3, 3, 1, 1, 1, 1},
      {3, 66, 3, 3, 2, 2, 1, 1},
  };
  int levels = 0;
  for (Isa isa : supported_isas()) {
    const FloatKernelTable& t = float_kernels_for(isa);
    levels += t.max_pool != max_pool__ref;
    CAPTURE(t.max_pool_name);
    for (const Case& c : cases) {
      const MaxPoolGeo g{
          c.h,  c.w, (c.h + 2 * c.ph - c.kh) / c.sh + 1, (c.w + 2 * c.pw - c.kw) / c.sw + 1, c.kh, c.kw, c.sh, c.sw,
          c.ph, c.pw};
      CAPTURE(c.h);
      CAPTURE(c.w);
      CAPTURE(c.kh);
      CAPTURE(c.kw);
      CAPTURE(c.sw);
      const int64_t planes = 3;
      std::vector<float> in(planes * c.h * c.w);
      for (float& v : in) v = d(gen);
      for (size_t i = 0; i < in.size(); i += 2) in[i] = special[(i / 2) % 7];  // every second value special
      // Around the output, values no output may take: the kernel writes planes * oh * ow floats only.
      const int64_t n = planes * g.oh * g.ow;
      std::vector<float> want(n), got(n + 32, -7.f), work(2 * c.w);
      for (int64_t p = 0; p < planes; ++p)
        for (int64_t oh = 0; oh < g.oh; ++oh)
          for (int64_t ow = 0; ow < g.ow; ++ow)
            want[(p * g.oh + oh) * g.ow + ow] = max_pool_definition(in.data() + p * c.h * c.w, g, oh, ow);
      t.max_pool(got.data() + 16, in.data(), planes, g, work.data());
      REQUIRE(std::memcmp(got.data() + 16, want.data(), n * sizeof(float)) == 0);
      for (int i = 0; i < 16; ++i) REQUIRE((got[i] == -7.f && got[16 + n + i] == -7.f));
    }
  }
  if (levels == 0) MESSAGE("skipped: this CPU has only the reference max pool");
}
