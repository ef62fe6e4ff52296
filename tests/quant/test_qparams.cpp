#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "core/error.h"
#include "quant/qparams.h"

using namespace qforge::quant;

namespace {
constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kMax = std::numeric_limits<int32_t>::max();
constexpr float kEps = std::numeric_limits<float>::epsilon();
}  // namespace

TEST_CASE("choose_qparams_affine: range always contains 0, zero point exact") {
  SUBCASE("positive range") {
    QParams q = choose_qparams_affine(1.0f, 5.0f);
    CHECK(q.zero_point == 0);
    CHECK(q.scale == doctest::Approx(5.0f / 255.0f));
  }
  SUBCASE("negative range") {
    QParams q = choose_qparams_affine(-5.0f, -1.0f);
    CHECK(q.zero_point == 255);
    CHECK(q.scale == doctest::Approx(5.0f / 255.0f));
  }
  SUBCASE("zero point rounds half to even") {
    // scale = 15.9375 / 255 = 2^-4 exactly; min / scale = -2.5 exactly: torch.round gives -2.
    QParams q = choose_qparams_affine(-0.15625f, 15.78125f);
    CHECK(q.scale == 0.0625f);
    CHECK(q.zero_point == 2);
    QParams r = choose_qparams_affine(-0.21875f, 15.71875f);  // -3.5 -> -4
    CHECK(r.zero_point == 4);
  }
  SUBCASE("degenerate range: PyTorch's eps floor") {
    QParams q = choose_qparams_affine(0.0f, 0.0f);
    CHECK(q.scale == kEps);
    CHECK(q.zero_point == 0);
    QParams s = choose_qparams_affine(-3.0f, -3.0f, -128, 127);
    CHECK(s.zero_point == 127);
  }
  SUBCASE("endpoints representable, real 0 exact") {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-10.0f, 10.0f);
    for (int t = 0; t < 1000; ++t) {
      float a = d(rng), b = d(rng);
      if (a > b) std::swap(a, b);
      QParams q = choose_qparams_affine(a, b);
      REQUIRE(q.zero_point >= 0);
      REQUIRE(q.zero_point <= 255);
      float inv = 1.0f / q.scale;
      CHECK(dequantize_val(quantize_val(0.0f, inv, q.zero_point, 0, 255), q.scale, q.zero_point) == 0.0f);
      for (float x : {std::min(a, 0.0f), std::max(b, 0.0f)}) {
        float back = dequantize_val(quantize_val(x, inv, q.zero_point, 0, 255), q.scale, q.zero_point);
        // zero point rounding can cost at most half a step at the ends, rounding another half.
        CHECK(std::fabs(back - x) <= q.scale * 1.0001f);
      }
    }
  }
  SUBCASE("errors name the problem") {
    CHECK_THROWS_AS(choose_qparams_affine(1.0f, 0.0f), qforge::Error);
    CHECK_THROWS_AS(choose_qparams_affine(0.0f, INFINITY), qforge::Error);
    CHECK_THROWS_AS(choose_qparams_affine(NAN, 1.0f), qforge::Error);
    CHECK_THROWS_AS(choose_qparams_affine(0.0f, 1.0f, 5, 5), qforge::Error);
  }
}

TEST_CASE("choose_qparams_symmetric: zero point 0, scale absmax/127") {
  QParams q = choose_qparams_symmetric(2.54f);
  CHECK(q.zero_point == 0);
  CHECK(q.qmin == -127);
  CHECK(q.qmax == 127);
  CHECK(q.scale == 2.54f / 127.0f);
  CHECK(quantize_val(2.54f, 1.0f / q.scale, 0, -127, 127) == 127);
  CHECK(quantize_val(-2.54f, 1.0f / q.scale, 0, -127, 127) == -127);
  CHECK(choose_qparams_symmetric(0.0f).scale == kEps);
  CHECK_THROWS_AS(choose_qparams_symmetric(-1.0f), qforge::Error);
}

TEST_CASE("round_to_int: half to even, identical to nearbyint") {
  CHECK(round_to_int(0.5f) == 0);
  CHECK(round_to_int(1.5f) == 2);
  CHECK(round_to_int(2.5f) == 2);
  CHECK(round_to_int(-0.5f) == 0);
  CHECK(round_to_int(-1.5f) == -2);
  CHECK(round_to_int(-2.5f) == -2);
  CHECK(round_to_int(2.4999998f) == 2);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> d(-1000.0f, 1000.0f);
  for (int i = 0; i < 100000; ++i) {
    float x = d(rng);
    if (i % 2) x = std::round(x * 2.0f) / 2.0f;  // many exact ties
    REQUIRE(round_to_int(x) == static_cast<int32_t>(std::nearbyint(x)));
  }
}

TEST_CASE("quantize_val: clamps, rounds, maps every float") {
  const float inv = 1.0f / 0.1f;
  CHECK(quantize_val(0.0f, inv, 128, 0, 255) == 128);
  CHECK(quantize_val(1e30f, inv, 128, 0, 255) == 255);
  CHECK(quantize_val(-1e30f, inv, 128, 0, 255) == 0);
  CHECK(quantize_val(INFINITY, inv, 128, 0, 255) == 255);
  CHECK(quantize_val(-INFINITY, inv, 128, 0, 255) == 0);
  CHECK(quantize_val(NAN, inv, 128, 0, 255) == 0);
  CHECK(quantize_val(0.25f, 10.0f, 0, 0, 255) == 2);  // 2.5 -> 2
  CHECK(quantize_val(0.35f, 10.0f, 0, 0, 255) == 4);  // 0.35f * 10 is 3.5f in float: a tie, to even
  CHECK(quantize_val(0.35f, 10.0f, 0, 0, 255) == static_cast<int32_t>(std::nearbyint(0.35f * 10.0f)));
  CHECK(quantize_val(-12.7f, 10.0f, 0, -127, 127) == -127);
  CHECK(quantize_val(-13.0f, 10.0f, 0, -127, 127) == -127);
  // Same as PyTorch's fake-quant formula: clamp(zp + nearbyint(x * inv_scale)).
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-30.0f, 30.0f);
  for (int i = 0; i < 10000; ++i) {
    float x = d(rng);
    int64_t ref = 37 + static_cast<int64_t>(std::nearbyint(x * inv));
    ref = std::min<int64_t>(255, std::max<int64_t>(0, ref));
    REQUIRE(quantize_val(x, inv, 37, 0, 255) == ref);
  }
  uint8_t q[3];
  float back[3];
  const float src[3] = {-1.0f, 0.0f, 2.0f};
  QParams qp = choose_qparams_affine(-1.0f, 2.0f);
  quantize(q, src, 3, qp);
  dequantize(back, q, 3, qp);
  CHECK(q[0] == 0);
  CHECK(q[2] == 255);
  CHECK(back[1] == 0.0f);
}

TEST_CASE("quantize_multiplier: frexp decomposition") {
  SUBCASE("hand cases") {
    FixedPointMultiplier m = quantize_multiplier(0.5);
    CHECK(m.multiplier == (1 << 30));
    CHECK(m.shift == 0);
    m = quantize_multiplier(0.25);
    CHECK(m.multiplier == (1 << 30));
    CHECK(m.shift == -1);
    m = quantize_multiplier(3.0);
    CHECK(m.multiplier == (3 << 29));
    CHECK(m.shift == 2);
    m = quantize_multiplier(0.0);
    CHECK(m.multiplier == 0);
    CHECK(m.shift == 0);
    m = quantize_multiplier(1e-12);  // below 2^-32
    CHECK(m.multiplier == 0);
  }
  SUBCASE("mantissa rounding up to 2^31") {
    double real = (2147483648.0 - 0.25) / 2147483648.0;  // mantissa * 2^31 rounds to 2^31
    FixedPointMultiplier m = quantize_multiplier(real);
    CHECK(m.multiplier == (1 << 30));
    CHECK(m.shift == 1);
  }
  SUBCASE("accuracy: relative error <= 2^-31") {
    std::mt19937 rng(4);
    std::uniform_real_distribution<double> e(-20.0, 10.0);
    for (int i = 0; i < 10000; ++i) {
      double real = std::exp2(e(rng));
      FixedPointMultiplier m = quantize_multiplier(real);
      REQUIRE(m.multiplier >= (1 << 30));
      double back = std::ldexp(static_cast<double>(m.multiplier), m.shift - 31);
      REQUIRE(std::fabs(back - real) <= real * std::ldexp(1.0, -31));
    }
  }
  SUBCASE("errors") {
    CHECK_THROWS_AS(quantize_multiplier(-0.5), qforge::Error);
    CHECK_THROWS_AS(quantize_multiplier(std::ldexp(1.0, 30)), qforge::Error);
    CHECK_THROWS_AS(quantize_multiplier(NAN), qforge::Error);
  }
}

namespace {
// x * multiplier * 2^(shift - 31) rounded once, half up, without the kernels' formula: exact
// 128-bit product, truncating division, and the remainder compared with half the divisor.
int64_t exact_round_half_up(int32_t x, FixedPointMultiplier m) {
  const int lshift = m.shift > 0 ? m.shift : 0, s = 31 + (m.shift > 0 ? 0 : -m.shift);
  __int128 xs = static_cast<__int128>(x) << lshift;
  xs = std::min<__int128>(kMax, std::max<__int128>(kMin, xs));  // the saturating left shift
  const __int128 v = xs * m.multiplier, d = static_cast<__int128>(1) << s;
  __int128 q = v / d, r = v % d;  // toward zero
  if (r < 0) q -= 1, r += d;      // floor, remainder in [0, d)
  return static_cast<int64_t>(q + (2 * r >= d ? 1 : 0));
}
}  // namespace

TEST_CASE("multiply_by_quantized_multiplier: one rounding, half up") {
  // Ties: x * 0.5 for odd x rounds up, on both sides of zero.
  const FixedPointMultiplier half{1 << 30, 0};
  CHECK(multiply_by_quantized_multiplier(3, half) == 2);
  CHECK(multiply_by_quantized_multiplier(-3, half) == -1);
  CHECK(multiply_by_quantized_multiplier(-5, half) == -2);
  CHECK(multiply_by_quantized_multiplier(1000, half) == 500);
  CHECK(multiply_by_quantized_multiplier(0, FixedPointMultiplier{kMax, -31}) == 0);
  CHECK(multiply_by_quantized_multiplier(kMin, half) == -(1 << 30));
  CHECK(multiply_by_quantized_multiplier(kMax, FixedPointMultiplier{kMax, 0}) == kMax - 1);  // the largest result
  CHECK(multiply_by_quantized_multiplier(kMin, FixedPointMultiplier{kMax, 0}) == -kMax);
  // Where two roundings part from one: x = 1, M = (2^31 - 1) * 2^-32 = 0.49999999977 gives 0;
  // gemmlowp's high multiply rounds 0.99999999953 up to 1, and its shift rounds 1 / 2 to 1.
  CHECK(multiply_by_quantized_multiplier(1, FixedPointMultiplier{kMax, -1}) == 0);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> d(kMin, kMax);
  std::uniform_int_distribution<int32_t> mult(1 << 30, kMax), shift(-31, 30);
  for (int i = 0; i < 300000; ++i) {
    int32_t x = d(rng);
    if (i % 3 == 0) x >>= (i % 31);
    FixedPointMultiplier m{mult(rng), shift(rng)};
    if (i % 5 == 0) m.multiplier = 1 << 30;  // exact ties
    if (i % 7 == 0) m.multiplier = 0;        // padded channels
    CAPTURE(x);
    CAPTURE(m.multiplier);
    CAPTURE(m.shift);
    REQUIRE(multiply_by_quantized_multiplier(x, m) == exact_round_half_up(x, m));
  }
}

TEST_CASE("requantize: hand cases and saturation") {
  // -7 * 0.25 = -1.75 -> -2
  CHECK(requantize(-7, quantize_multiplier(0.25), 0, -128, 127) == -2);
  CHECK(requantize(-7, quantize_multiplier(0.25), 10, 0, 255) == 8);
  CHECK(requantize(1000, quantize_multiplier(0.5), 3, 0, 255) == 255);
  CHECK(requantize(100, quantize_multiplier(0.5), 3, 0, 255) == 53);
  // clamp below, fused ReLU as qmin = zero point
  CHECK(requantize(-100, quantize_multiplier(0.5), 20, 20, 255) == 20);
  // left shift saturates instead of wrapping: 2^30 * 8 would wrap to 0
  CHECK(multiply_by_quantized_multiplier(1 << 30, quantize_multiplier(4.0)) == (1 << 30));  // INT32_MAX * 0.5 rounded
  CHECK(multiply_by_quantized_multiplier(-(1 << 30), quantize_multiplier(4.0)) == -(1 << 30));
  CHECK(requantize(1 << 30, quantize_multiplier(4.0), 0, 0, 255) == 255);
  CHECK(multiply_by_quantized_multiplier(3, quantize_multiplier(3.0)) == 9);
  // extremes never overflow when the zero point is added
  CHECK(requantize(kMax, quantize_multiplier(0.9999), 255, 0, 255) == 255);
  CHECK(requantize(kMin, quantize_multiplier(0.9999), 0, 0, 255) == 0);
  CHECK(requantize(kMin, FixedPointMultiplier{0, 0}, 7, 0, 255) == 7);
}

TEST_CASE("requantize: acc * M rounded once, M as the fixed-point multiplier represents it") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> acc_d(-(1 << 24), 1 << 24);
  std::uniform_real_distribution<double> e(-16.0, 4.0);
  int off_by_one = 0;
  for (int i = 0; i < 100000; ++i) {
    int32_t acc = acc_d(rng);
    double real = std::exp2(e(rng));
    FixedPointMultiplier m = quantize_multiplier(real);
    int64_t ref = exact_round_half_up(acc, m) + 100;
    ref = std::min<int64_t>(kMax, std::max<int64_t>(kMin, ref));
    REQUIRE(requantize(acc, m, 100, kMin, kMax) == ref);
    // Against the real multiplier in double precision: off only where the 31-bit multiplier's
    // error (relative 2^-31) crosses a rounding boundary.
    int64_t real_ref = std::min<int64_t>(kMax, std::max<int64_t>(kMin, std::llround(acc * real) + 100));
    REQUIRE(std::llabs(ref - real_ref) <= 1);
    off_by_one += ref != real_ref;
  }
  // The 31-bit multiplier's relative error (<= 2^-31) times |acc * M| (up to 2^28 here) moves a
  // result across a rounding boundary in about 0.2% of these cases (161 of 100000 measured).
  CHECK(off_by_one < 500);
}
