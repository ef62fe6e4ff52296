// qadd, qmaxpool2d, qglobal_avgpool, quantize, dequantize: the reference against a float or direct
// computation, and every SIMD level against the reference, byte for byte.
#include <algorithm>
#include <limits>

#include "core/error.h"
#include "test_kernels_util.h"

using namespace qtest;

namespace {

const int kSizes[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 4099};

struct AddCase {
  QParams a, b, out;
  bool relu;
};

std::vector<AddCase> add_cases() {
  std::vector<AddCase> v;
  auto q = [](float s, int zp) { return QParams{s, zp, 0, 255}; };
  v.push_back({q(0.05f, 128), q(0.05f, 128), q(0.1f, 128), false});
  v.push_back({q(0.05f, 0), q(0.02f, 10), q(0.03f, 0), true});
  v.push_back({q(0.013f, 255), q(0.2f, 3), q(0.09f, 77), false});
  v.push_back({q(0.2f, 128), q(0.001f, 128), q(0.002f, 128), true});  // out scale far below: saturates
  v.push_back({q(0.01f, 128), q(0.01f, 128), q(1e-5f, 128), false});  // out multiplier > 1
  v.push_back({q(0.5f, 7), q(0.25f, 200), q(4.0f, 255), false});
  return v;
}

}  // namespace

TEST_CASE("qadd reference: within one step of float") {
  std::mt19937 rng(21);
  for (const AddCase& c : add_cases()) {
    const QAddParams p = make_qadd_params(c.a, c.b, c.out, c.relu);
    auto a = random_u8(rng, 4096), b = random_u8(rng, 4096);
    std::vector<uint8_t> y(4096);
    qadd(p, 4096, a.data(), b.data(), y.data(), Isa::scalar);
    for (int i = 0; i < 4096; ++i) {
      const double real = double(c.a.scale) * (a[i] - c.a.zero_point) + double(c.b.scale) * (b[i] - c.b.zero_point);
      double q = std::nearbyint(real / c.out.scale) + c.out.zero_point;
      q = std::min(255.0, std::max(c.relu ? double(c.out.zero_point) : 0.0, q));
      REQUIRE_MESSAGE(std::fabs(y[i] - q) <= 1.0,
                      "a " << int(a[i]) << " b " << int(b[i]) << " got " << int(y[i]) << " want " << q);
    }
  }
  // hand case: same scales, out = a + b in real terms
  const QAddParams p = make_qadd_params({0.1f, 0, 0, 255}, {0.1f, 0, 0, 255}, {0.1f, 0, 0, 255}, false);
  const uint8_t a[3] = {1, 100, 200}, b[3] = {2, 100, 100};
  uint8_t y[3];
  qadd(p, 3, a, b, y, Isa::scalar);
  CHECK(y[0] == 3);
  CHECK(y[1] == 200);
  CHECK(y[2] == 255);
}

static void add_matches_ref(Isa isa) {
  std::mt19937 rng(22);
  for (const AddCase& c : add_cases()) {
    const QAddParams p = make_qadd_params(c.a, c.b, c.out, c.relu);
    for (int n : kSizes) {
      auto a = random_u8(rng, n), b = random_u8(rng, n);
      std::vector<uint8_t> ref(n), got(n);
      qadd(p, n, a.data(), b.data(), ref.data(), Isa::scalar);
      qadd(p, n, a.data(), b.data(), got.data(), isa);
      REQUIRE_MESSAGE(first_diff(ref, got) < 0, iname(isa)
                                                    << " qadd n=" << n << " differs at " << first_diff(ref, got));
    }
  }
}
QTEST_PER_ISA("qadd: SIMD == reference", add_matches_ref)

// Input-to-output scale ratios near the limit once rounded a multiplier to 32768, which wrapped to
// -32768 in int16. Every accepted ratio must give multipliers in (0, 32767] within the documented
// relative error (2^-14 of the larger), and outputs within that error of a double-precision add.
TEST_CASE("qadd params: multipliers fit int16 at the limit and for random scale ratios") {
  auto q = [](float s, int zp) { return QParams{s, zp, 0, 255}; };
  std::vector<AddCase> cases;
  for (float s : {16383.5f, 16383.6f, 16383.75f, 16383.8f, 16383.99f, 8191.9f, 4095.99f, 16383.0f, 0.5f})
    cases.push_back({q(s, 128), q(s * 0.5f, 128), q(1.0f, 128), false});
  std::mt19937 rng(23);
  std::uniform_real_distribution<double> lg(-12.0, 14.0);
  for (int i = 0; i < 300; ++i)
    cases.push_back({q(float(std::exp2(lg(rng))), int(rng() % 256)), q(float(std::exp2(lg(rng))), int(rng() % 256)),
                     q(1.0f, int(rng() % 256)), false});
  int accepted = 0;
  for (const AddCase& c : cases) {
    QAddParams p;
    try {
      p = make_qadd_params(c.a, c.b, c.out, c.relu);
    } catch (const qforge::Error&) {
      // Refused: only a ratio the 16-bit multipliers cannot hold at the smallest shift.
      CHECK(std::max(c.a.scale, c.b.scale) / c.out.scale >= 16383.5);
      continue;
    }
    ++accepted;
    const double ma = double(c.a.scale) / c.out.scale, mb = double(c.b.scale) / c.out.scale;
    const double mmax = std::max(ma, mb), unit = std::ldexp(1.0, -p.shift);
    REQUIRE_MESSAGE(std::fabs(p.a_mul * unit - ma) <= mmax * 0x1p-14, "a scale ratio " << ma << " a_mul " << p.a_mul);
    REQUIRE_MESSAGE(std::fabs(p.b_mul * unit - mb) <= mmax * 0x1p-14, "b scale ratio " << mb << " b_mul " << p.b_mul);
    auto a = random_u8(rng, 512), b = random_u8(rng, 512);
    std::vector<uint8_t> y(512);
    qadd(p, 512, a.data(), b.data(), y.data(), Isa::scalar);
    for (int i = 0; i < 512; ++i) {
      const double da = a[i] - c.a.zero_point, db = b[i] - c.b.zero_point;
      const double real = ma * da + mb * db + c.out.zero_point;
      const double tol = 1.0 + (std::fabs(da) + std::fabs(db)) * mmax * 0x1p-14;
      const double lo = std::min(255.0, std::max(0.0, real - tol)), hi = std::max(0.0, std::min(255.0, real + tol));
      REQUIRE_MESSAGE((y[i] >= lo && y[i] <= hi), "scales " << c.a.scale << ", " << c.b.scale << ": a " << int(a[i])
                                                            << " b " << int(b[i]) << " got " << int(y[i]) << " want "
                                                            << real);
    }
  }
  CHECK(accepted > 250);
}

// ---------------------------------------------------------------------------

TEST_CASE("qmaxpool2d reference: hand case") {
  // 1x3x3x1, 3x3 s2 pad 1 -> 2x2; padding ignored (not 0): all values small
  const uint8_t x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const QPool2dParams p = make_pool2d_params(1, 3, 3, 1, 3, 3, 2, 2, 1, 1);
  REQUIRE(p.OH == 2);
  REQUIRE(p.OW == 2);
  uint8_t y[4];
  qmaxpool2d(p, x, y, Isa::scalar);
  CHECK(y[0] == 5);
  CHECK(y[1] == 6);
  CHECK(y[2] == 8);
  CHECK(y[3] == 9);
  CHECK_THROWS_AS(make_pool2d_params(1, 3, 3, 1, 3, 3, 2, 2, 2, 2), qforge::Error);
}

static void maxpool_matches_ref(Isa isa) {
  std::mt19937 rng(23);
  int i = 0;
  for (int C : {1, 3, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 129})
    for (int k : {2, 3}) {
      const int H = 5 + i % 6, W = 4 + (i * 3) % 7, s = 1 + i % 2, pad = (i % 3 == 0) ? 0 : 1;
      const QPool2dParams p = make_pool2d_params(1 + i % 2, H, W, C, k, k, s, s, k == 2 ? 0 : pad, k == 2 ? 0 : pad);
      auto x = random_u8(rng, size_t(p.N) * H * W * C);
      std::vector<uint8_t> ref(size_t(p.N) * p.OH * p.OW * C), got(ref.size());
      qmaxpool2d(p, x.data(), ref.data(), Isa::scalar);
      qmaxpool2d(p, x.data(), got.data(), isa);
      REQUIRE_MESSAGE(first_diff(ref, got) < 0, iname(isa) << " maxpool C=" << C << " k=" << k);
      ++i;
    }
}
QTEST_PER_ISA("qmaxpool2d: SIMD == reference", maxpool_matches_ref)

// ---------------------------------------------------------------------------

TEST_CASE("qglobal_avgpool reference: within one step of float") {
  std::mt19937 rng(24);
  for (int HW : {1, 4, 7, 49}) {
    const int N = 2, C = 19;
    const QParams qi{0.05f, 100, 0, 255}, qo{0.02f, 20, 0, 255};
    auto x = random_u8(rng, size_t(N) * HW * C);
    const auto p = make_global_avgpool_params(N, HW, 1, C, qi, qo);
    std::vector<uint8_t> y(size_t(N) * C);
    qglobal_avgpool(p, x.data(), y.data(), Isa::scalar);
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c) {
        double s = 0;
        for (int i = 0; i < HW; ++i) s += qi.scale * (x[(size_t(n) * HW + i) * C + c] - qi.zero_point);
        double q = std::min(255.0, std::max(0.0, std::nearbyint(s / HW / qo.scale) + qo.zero_point));
        REQUIRE(std::fabs(y[size_t(n) * C + c] - q) <= 1.0);
      }
  }
}

static void gavgpool_matches_ref(Isa isa) {
  std::mt19937 rng(25);
  for (int C : {1, 3, 15, 16, 17, 31, 32, 33, 64, 65, 512})
    for (int H : {1, 2, 4, 7}) {
      const QParams qi{0.05f, static_cast<int32_t>(rng() % 256), 0, 255}, qo{0.03f, 128, 0, 255};
      const auto p = make_global_avgpool_params(3, H, H + 1, C, qi, qo);
      auto x = random_u8(rng, size_t(3) * H * (H + 1) * C);
      std::vector<uint8_t> ref(size_t(3) * C), got(ref.size());
      qglobal_avgpool(p, x.data(), ref.data(), Isa::scalar);
      qglobal_avgpool(p, x.data(), got.data(), isa);
      REQUIRE_MESSAGE(first_diff(ref, got) < 0, iname(isa) << " gavgpool C=" << C << " H=" << H);
    }
}
QTEST_PER_ISA("qglobal_avgpool: SIMD == reference", gavgpool_matches_ref)

// ---------------------------------------------------------------------------

namespace {
std::vector<float> tricky_floats(std::mt19937& rng, size_t n, float scale) {
  std::vector<float> v(n);
  std::uniform_real_distribution<float> d(-160.0f, 160.0f);
  const float specials[] = {0.0f,
                            -0.0f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            1e30f,
                            -1e30f,
                            3e9f,
                            -3e9f};
  for (size_t i = 0; i < n; ++i) {
    if (i % 17 == 5)
      v[i] = specials[(i / 17) % 9];
    else if (i % 3 == 0)
      v[i] = (std::round(d(rng)) + 0.5f) * scale;  // ties (up to float error in the product)
    else
      v[i] = d(rng) * scale;
  }
  return v;
}
}  // namespace

TEST_CASE("quantize / dequantize reference: quantize_val, NCHW <-> NHWC") {
  std::mt19937 rng(26);
  const int N = 2, C = 3, H = 4, W = 5;
  const QParams qp{0.25f, 100, 0, 255};
  auto x = tricky_floats(rng, size_t(N) * C * H * W, qp.scale);
  std::vector<uint8_t> q(x.size());
  quantize_nchw_to_nhwc(qp, N, C, H, W, x.data(), q.data(), Isa::scalar);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int i = 0; i < H * W; ++i) {
        const float v = x[(size_t(n) * C + c) * H * W + i];
        REQUIRE(q[(size_t(n) * H * W + i) * C + c] == quantize_val(v, 1.0f / qp.scale, 100, 0, 255));
      }
  std::vector<float> back(x.size());
  dequantize_nhwc_to_nchw(qp, N, C, H, W, q.data(), back.data(), Isa::scalar);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isfinite(x[i]) && std::fabs(x[i]) < 25.0f) CHECK(std::fabs(back[i] - x[i]) <= 0.125f);
  }
}

static void quantize_matches_ref(Isa isa) {
  std::mt19937 rng(27);
  for (int C : {1, 2, 3, 4, 16, 17, 64})
    for (int HW : {1, 7, 15, 16, 17, 33, 64, 100}) {
      const int N = 1 + (C + HW) % 3;
      const QParams qp{0.0173f * (1 + HW % 3), static_cast<int32_t>((C * 37 + HW) % 256), 0, 255};
      QParams qr = qp;  // a narrower clamp too
      qr.qmin = std::min(qr.zero_point, 10);
      qr.qmax = std::max(qr.zero_point, 200);
      for (const QParams& q : {qp, qr}) {
        auto x = tricky_floats(rng, size_t(N) * C * HW, q.scale);
        std::vector<uint8_t> ref(x.size()), got(x.size());
        quantize_nchw_to_nhwc(q, N, C, HW, 1, x.data(), ref.data(), Isa::scalar);
        quantize_nchw_to_nhwc(q, N, C, HW, 1, x.data(), got.data(), isa);
        REQUIRE_MESSAGE(first_diff(ref, got) < 0,
                        iname(isa) << " quantize C=" << C << " HW=" << HW << " at " << first_diff(ref, got));
        std::vector<float> fr(x.size()), fg(x.size());
        dequantize_nhwc_to_nchw(q, N, C, HW, 1, ref.data(), fr.data(), Isa::scalar);
        dequantize_nhwc_to_nchw(q, N, C, HW, 1, ref.data(), fg.data(), isa);
        REQUIRE_MESSAGE(first_diff(fr, fg) < 0, iname(isa) << " dequantize C=" << C << " HW=" << HW);
      }
    }
}
QTEST_PER_ISA("quantize / dequantize: SIMD == reference", quantize_matches_ref)

TEST_CASE("qglobal_avgpool rounds once: within half a step of the exact mean, even on a 2x2 map") {
  // Small sums used to be rounded twice (fixed-point multiply, then shift), up to 0.9 step off.
  std::mt19937 rng(5);
  for (int hw : {1, 2, 4, 7}) {
    const int N = 3, C = 37;
    std::vector<uint8_t> in(static_cast<size_t>(N) * hw * hw * C), out(N * C);
    for (auto& v : in) v = static_cast<uint8_t>(rng() % 256);
    qforge::quant::QParams iq{0.0146643f, 3, 0, 255}, oq{0.00907642f, 7, 0, 255};
    auto p = qforge::quant::make_global_avgpool_params(N, hw, hw, C, iq, oq);
    for (auto isa : qforge::quant::table_isas()) {
      qforge::quant::qglobal_avgpool(p, in.data(), out.data(), isa);
      for (int n = 0; n < N; ++n)
        for (int c = 0; c < C; ++c) {
          double sum = 0;
          for (int i = 0; i < hw * hw; ++i) sum += in[(static_cast<size_t>(n) * hw * hw + i) * C + c] - iq.zero_point;
          double exact = sum / (hw * hw) * iq.scale / oq.scale + oq.zero_point;
          exact = std::clamp(exact, 0.0, 255.0);
          REQUIRE(std::abs(out[n * C + c] - exact) <= 0.5 + 1e-3);
        }
    }
  }
}
