// qconv2d and qlinear: the reference against a float computation, and every SIMD level against the
// reference, byte for byte.
#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/threads.h"
#include "test_kernels_util.h"

using namespace qtest;

namespace {

struct ConvCase {
  int N = 1, H = 5, W = 5, C = 3, OC = 4, KH = 3, KW = 3;
  int sh = 1, sw = 1, ph = 1, pw = 1, dh = 1, dw = 1;
  int zx = 128, zy = 128;
  bool relu = false;
  bool big_multipliers = false;  // some multipliers >= 1: the saturating left shift
  std::string str() const {
    std::ostringstream s;
    s << "N" << N << " H" << H << " W" << W << " C" << C << " OC" << OC << " k" << KH << "x" << KW << " s" << sh << ","
      << sw << " p" << ph << "," << pw << " d" << dh << "," << dw << " zx" << zx << " zy" << zy << (relu ? " relu" : "")
      << (big_multipliers ? " big-m" : "");
    return s.str();
  }
  QConvParams params() const {
    QConvParams p;
    p.N = N, p.H = H, p.W = W, p.C = C, p.OC = OC, p.KH = KH, p.KW = KW;
    p.stride_h = sh, p.stride_w = sw, p.pad_h = ph, p.pad_w = pw, p.dilation_h = dh, p.dilation_w = dw;
    p.in_zero_point = zx;
    p.out_zero_point = zy;
    p.out_qmin = relu ? zy : 0;
    p.out_qmax = 255;
    return p;
  }
};

struct ConvData {
  std::vector<uint8_t> x;
  std::vector<int8_t> w;  // (OC, C, KH, KW)
  std::vector<int32_t> bias;
  float sx = 0.02f, sy = 0;
  std::vector<float> sw;
  std::vector<FixedPointMultiplier> m;
  std::vector<double> real_m;
};

ConvData make_data(const ConvCase& c, std::mt19937& rng) {
  ConvData d;
  const int K = c.KH * c.KW * c.C;
  d.x = random_u8(rng, size_t(c.N) * c.H * c.W * c.C);
  d.w = random_s8(rng, size_t(c.OC) * K);
  std::uniform_int_distribution<int> bd(-3000 * K / 8 - 100, 3000 * K / 8 + 100);
  d.bias.resize(c.OC);
  for (auto& b : d.bias) b = bd(rng);
  std::uniform_real_distribution<float> sd(0.001f, 0.01f);
  d.sw.resize(c.OC);
  double mean_sw = 0;
  for (auto& s : d.sw) mean_sw += (s = sd(rng));
  mean_sw /= c.OC;
  // accumulators spread ~ sqrt(K) * 74 * 74: aim for outputs spread over ~60 levels
  d.sy = static_cast<float>(d.sx * mean_sw * std::sqrt(double(K)) * 74.0 * 74.0 / 60.0);
  d.m.resize(c.OC);
  d.real_m.resize(c.OC);
  for (int o = 0; o < c.OC; ++o) {
    d.real_m[o] = double(d.sx) * d.sw[o] / d.sy;
    if (c.big_multipliers && o % 3 == 1) d.real_m[o] *= 4096.0;  // left shift, mostly saturates
    if (c.big_multipliers && o % 5 == 2) d.real_m[o] = 0.0;
    d.m[o] = quantize_multiplier(d.real_m[o]);
  }
  return d;
}

std::vector<uint8_t> run(const ConvCase& c, const ConvData& d, Isa isa) {
  const QConvParams p = c.params();
  PackedConvWeights pw = pack_conv_weights(p, d.w.data(), d.bias.data(), d.m.data(), isa);
  std::vector<uint8_t> y(size_t(p.N) * p.OH() * p.OW() * p.OC, 0xA5);
  qconv2d(p, pw, d.x.data(), y.data());
  return y;
}

// Dequantize, convolve in double, requantize: the reference may differ by one step (the fixed-point
// multiplier's last bit, and float rounding in this double-precision reference).
void check_ref_against_float(const ConvCase& c, const ConvData& d, const std::vector<uint8_t>& y) {
  const QConvParams p = c.params();
  const int OH = p.OH(), OW = p.OW();
  int64_t exact = 0, total = 0;
  for (int n = 0; n < c.N; ++n)
    for (int oh = 0; oh < OH; ++oh)
      for (int ow = 0; ow < OW; ++ow)
        for (int o = 0; o < c.OC; ++o) {
          const double s_acc = double(d.sx) * d.sw[o];
          double real = d.bias[o] * s_acc;
          for (int ci = 0; ci < c.C; ++ci)
            for (int kh = 0; kh < c.KH; ++kh)
              for (int kw = 0; kw < c.KW; ++kw) {
                const int ih = oh * c.sh - c.ph + kh * c.dh, iw = ow * c.sw - c.pw + kw * c.dw;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                const double xr = d.sx * (int(d.x[((size_t(n) * c.H + ih) * c.W + iw) * c.C + ci]) - c.zx);
                const double wr = d.sw[o] * double(d.w[((size_t(o) * c.C + ci) * c.KH + kh) * c.KW + kw]);
                real += xr * wr;
              }
          // requantize in real terms with the multiplier the kernel was given
          const double q = std::nearbyint(real / s_acc * d.real_m[o]) + c.zy;
          const double want = std::min<double>(255, std::max<double>(p.out_qmin, q));
          const int got = y[((size_t(n) * OH + oh) * OW + ow) * c.OC + o];
          REQUIRE_MESSAGE(std::fabs(got - want) <= 1.0, c.str() << " at n" << n << " oh" << oh << " ow" << ow << " oc"
                                                                << o << ": ref " << got << " float " << want);
          exact += got == want;
          ++total;
        }
  CHECK(exact * 10 >= total * 9);  // off by one only near ties
}

// The cases swept for every level: channels around the vector widths, odd sizes, padding 0/1/3,
// strides 1/2, dilation 2, batches, zero points 0/128/255, ReLU, stems (row-merged small C).
std::vector<ConvCase> sweep_cases() {
  std::vector<ConvCase> v;
  const int chans[] = {1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65};
  const int zps[] = {0, 128, 255};
  int i = 0;
  for (int C : chans)
    for (int OC : chans) {
      ConvCase c;
      c.C = C;
      c.OC = OC;
      c.H = 3 + i % 5;
      c.W = 4 + (i * 7) % 6;
      c.N = 1 + i % 3;
      const int k = (i % 4 == 0) ? 1 : (i % 4 == 3 ? 5 : 3);
      c.KH = k;
      c.KW = (i % 11 == 0) ? 1 : k;
      c.ph = (i % 3 == 0) ? 0 : (k > 1 ? (i % 7 == 0 ? 3 : 1) : 0);
      c.pw = c.ph;
      c.sh = 1 + (i % 2);
      c.sw = 1 + ((i / 2) % 2);
      c.dh = (i % 9 == 4) ? 2 : 1;
      c.dw = (i % 13 == 5) ? 2 : 1;
      c.zx = zps[i % 3];
      c.zy = zps[(i / 3) % 3];
      c.relu = i % 4 == 1;
      c.big_multipliers = i % 10 == 7;
      if (c.params().OH() <= 0 || c.params().OW() <= 0) {
        c.ph = c.pw = 3;
      }
      v.push_back(c);
      ++i;
    }
  // ResNet shapes, shrunk in space: stems (7x7 s2 C=3, 3x3 C=1), 3x3 blocks, 1x1 s2 downsample.
  auto add = [&](int N, int H, int C, int OC, int k, int s, int p) {
    ConvCase c;
    c.N = N, c.H = c.W = H, c.C = C, c.OC = OC, c.KH = c.KW = k, c.sh = c.sw = s, c.ph = c.pw = p;
    c.zx = 0;
    c.zy = 0;
    c.relu = true;
    v.push_back(c);
  };
  add(1, 23, 3, 64, 7, 2, 3);
  add(2, 28, 1, 64, 3, 1, 1);
  add(1, 9, 64, 64, 3, 1, 1);
  add(1, 8, 64, 128, 3, 2, 1);
  add(1, 8, 64, 128, 1, 2, 0);
  add(1, 4, 256, 512, 3, 2, 1);
  add(1, 3, 512, 512, 3, 1, 1);
  add(3, 4, 128, 256, 1, 1, 0);
  // Wider images: micro-tiles whose windows are all inside ("direct" tiles), next to border tiles.
  add(1, 19, 17, 33, 3, 1, 1);
  add(2, 16, 3, 16, 3, 1, 0);  // row-merged, no padding: direct tiles up to the end of the input
  add(2, 13, 1, 8, 3, 1, 0);
  add(1, 30, 5, 20, 5, 2, 2);
  add(1, 17, 6, 70, 1, 1, 0);  // C % 4 != 0 per-tap slices up to the end of the input
  ConvCase d;
  d.N = 2, d.H = 21, d.W = 18, d.C = 9, d.OC = 24, d.dh = d.dw = 2, d.ph = d.pw = 2, d.zx = 77, d.zy = 200;
  v.push_back(d);
  return v;
}

}  // namespace

TEST_CASE("qconv2d reference: within one step of dequantize -> float conv -> requantize") {
  std::mt19937 rng(11);
  const auto cases = sweep_cases();
  for (size_t i = 0; i < cases.size(); i += 3) {
    const ConvCase& c = cases[i];
    if (c.big_multipliers) continue;
    ConvData d = make_data(c, rng);
    check_ref_against_float(c, d, run(c, d, Isa::scalar));
  }
}

TEST_CASE("qconv2d reference: hand case") {
  // 1x1 conv, 2 channels -> 1, zx = 10: acc = 5 + (12-10)*3 + (7-10)*(-2) = 17, x0.5 -> 8.5 -> 9 (half away)
  QConvParams p;
  p.H = p.W = 1;
  p.C = 2;
  p.OC = 1;
  p.in_zero_point = 10;
  p.out_zero_point = 100;
  const int8_t w[2] = {3, -2};
  const int32_t b[1] = {5};
  const FixedPointMultiplier m[1] = {quantize_multiplier(0.5)};
  const uint8_t x[2] = {12, 7};
  for (Isa isa : table_isas()) {
    PackedConvWeights pw = pack_conv_weights(p, w, b, m, isa);
    uint8_t y = 0;
    qconv2d(p, pw, x, &y);
    CHECK_MESSAGE(y == 109, iname(isa));
  }
  // padding reads as real 0: 3x3 all-ones kernel, 1x1 image of value zx + 1, pad 1: only the center counts
  p.KH = p.KW = 3;
  p.pad_h = p.pad_w = 1;
  p.C = 1;
  const std::vector<int8_t> ones(9, 1);
  const uint8_t x1 = 11;
  for (Isa isa : table_isas()) {
    PackedConvWeights pw = pack_conv_weights(p, ones.data(), nullptr, m, isa);
    uint8_t y = 0;
    qconv2d(p, pw, &x1, &y);
    CHECK_MESSAGE(y == 101, iname(isa));  // 1 * 0.5 = 0.5 -> 1
  }
}

TEST_CASE("qconv2d: errors name the op and the shapes") {
  QConvParams p;
  p.H = p.W = 4;
  p.C = 2;
  p.OC = 2;
  p.groups = 3;  // channels not a multiple of groups (grouped convs run: test_kernels_dwconv.cpp)
  std::vector<int8_t> w(8, 1);
  std::vector<FixedPointMultiplier> m(2, quantize_multiplier(0.5));
  CHECK_THROWS_WITH_AS(pack_conv_weights(p, w.data(), nullptr, m.data()), doctest::Contains("multiples of groups 3"),
                       qforge::Error);
  p.groups = 1;
  PackedConvWeights pw = pack_conv_weights(p, w.data(), nullptr, m.data());
  QConvParams q = p;
  q.C = 3;
  std::vector<uint8_t> x(64), y(64);
  CHECK_THROWS_AS(qconv2d(q, pw, x.data(), y.data()), qforge::Error);
  q = p;
  q.out_qmax = 300;
  CHECK_THROWS_AS(pack_conv_weights(q, w.data(), nullptr, m.data()), qforge::Error);
}

static void conv_matches_ref(Isa isa) {
  std::mt19937 rng(12);
  int checked = 0;
  for (const ConvCase& c : sweep_cases()) {
    ConvData d = make_data(c, rng);
    const auto ref = run(c, d, Isa::scalar);
    const auto got = run(c, d, isa);
    const int64_t at = first_diff(ref, got);
    REQUIRE_MESSAGE(at < 0, iname(isa) << " differs from the reference for " << c.str() << " at byte " << at << ": "
                                       << int(got[at]) << " vs " << int(ref[at]));
    ++checked;
  }
  MESSAGE(iname(isa) << ": " << checked << " conv shapes identical to the reference");
}
QTEST_PER_ISA("qconv2d: SIMD == reference, byte for byte", conv_matches_ref)

static void conv_requant_extremes(Isa isa) {
  // A 1x1 conv whose only nonzero weight is 1 on input channel 0: each accumulator is bias[o] plus
  // x - zx, so the biases place the outputs. Right shifts by groups of 16 channels (and of 8, as the
  // AVX2 vectors see them): 1..8 (smallest 1: the 64-bit form), 2..17 and 16..31 (the high-half
  // form, from its boundary to the largest shift), then left shifts and shifts 0 and 1. Even
  // channels have the multiplier 2^30, so many accumulators fall on exact ties of the rounding.
  // Biases aim the outputs into [-100, 100] around the zero point where int32 can; elsewhere they
  // sit near either end of int32 (the saturating left shift among them).
  std::mt19937 rng(29);
  ConvCase c;
  c.N = 2, c.H = c.W = 8, c.C = 4, c.OC = 64, c.KH = c.KW = 1, c.ph = c.pw = 0, c.zx = 128;
  for (int zy : {0, 3, 128, 250})
    for (bool relu : {false, true}) {
      c.zy = zy, c.relu = relu;
      ConvData d;
      d.x = random_u8(rng, size_t(c.N) * c.H * c.W * c.C);
      d.w.assign(size_t(c.OC) * c.C, 0);
      for (int o = 0; o < c.OC; ++o) d.w[size_t(o) * c.C] = 1;
      d.bias.resize(c.OC);
      d.m.resize(c.OC);
      std::uniform_int_distribution<int32_t> mant(1 << 30, INT32_MAX), aim(-100, 100);
      for (int o = 0; o < c.OC; ++o) {
        const int shift = o < 16 ? -(1 + o % 8) : o < 32 ? -(2 + o - 16) : o < 48 ? -(o - 16) : (o % 4) - 1;
        d.m[o] = {o % 2 == 0 ? (1 << 30) : mant(rng), shift};
        const double real = std::ldexp(double(d.m[o].multiplier), shift - 31);
        const double b = aim(rng) / real;
        d.bias[o] = std::fabs(b) < 2e9 && o % 7 != 3 ? static_cast<int32_t>(std::lround(b))
                                                     : (o % 2 ? INT32_MAX - (1 << 18) : INT32_MIN + (1 << 18));
      }
      const auto ref = run(c, d, Isa::scalar), got = run(c, d, isa);
      const int64_t at = first_diff(ref, got);
      REQUIRE_MESSAGE(at < 0, iname(isa) << " zy " << zy << std::string(relu ? " relu" : "") << " differs at byte "
                                         << at << ": " << int(got[at]) << " vs " << int(ref[at]));
      int64_t inside = 0;  // outputs the clamp left alone: the rounding itself was compared
      for (uint8_t v : ref) inside += v > 0 && v < 255;
      CHECK(inside * 4 > int64_t(ref.size()));
    }
}
QTEST_PER_ISA("qconv2d: requantization of extreme accumulators and every right shift, SIMD == reference",
              conv_requant_extremes)

static void conv_panels_for_few_tiles(Isa isa) {
  // 25 pixels (5 tiles), 512 channels (8 panels) and 2.4 MB of weights on 2 threads: the driver
  // splits by channel panels (run_conv), each panel over every pixel.
  std::mt19937 rng(31);
  ConvCase c;
  c.N = 1, c.H = c.W = 5, c.C = 256, c.OC = 512;
  ConvData d = make_data(c, rng);
  qforge::set_num_threads(2);
  const auto ref = run(c, d, Isa::scalar), got = run(c, d, isa);
  qforge::set_num_threads(1);
  CHECK_MESSAGE(first_diff(ref, got) < 0, iname(isa));
}
QTEST_PER_ISA("qconv2d: channel panels for few tiles and large weights, SIMD == reference", conv_panels_for_few_tiles)

static void conv_threads_and_ranges(Isa isa) {
  // Direct kernel calls on sub-ranges of pixels and channel panels, and 1 vs 2 threads: same bytes.
  std::mt19937 rng(13);
  const KernelTable& k = kernels_for(isa);
  for (int OC : {16, 100, 192}) {
    ConvCase c;
    c.N = 2, c.H = 7, c.W = 9, c.C = 24, c.OC = OC;
    ConvData d = make_data(c, rng);
    const QConvParams p = c.params();
    const auto ref = run(c, d, Isa::scalar);
    PackedConvWeights pw = pack_conv_weights(p, d.w.data(), d.bias.data(), d.m.data(), isa);
    const QConvArgs a = pw.args(p);
    const int64_t P = int64_t(p.N) * p.OH() * p.OW();
    std::vector<uint8_t> y(ref.size(), 0);
    std::vector<uint64_t> scratch(conv_scratch_bytes(a, k.conv_mr, k.conv_chunk_tiles) / 8 + 1);
    const int panel = k.conv_panel_oc;
    // pixels in uneven pieces, channels panel by panel
    for (int64_t b = 0; b < P;) {
      const int64_t e = std::min(P, b + 1 + (b * 7) % 23);
      for (int o = 0; o < OC; o += panel)
        k.qconv2d(y.data(), nullptr, d.x.data(), a, b, e, o, std::min(OC, o + panel), scratch.data());
      b = e;
    }
    CHECK_MESSAGE(first_diff(ref, y) < 0, iname(isa) << " OC " << OC);
    // Through the driver: split over the pool's threads (pixels or channel panels).
    std::vector<uint8_t> y2(ref.size(), 0);
    qconv2d(p, pw, d.x.data(), y2.data());
    CHECK_MESSAGE(first_diff(ref, y2) < 0, iname(isa) << " OC " << OC << " threads " << qforge::num_threads());
  }
}
QTEST_PER_ISA("qconv2d: sub-ranges and threads", conv_threads_and_ranges)

// ---------------------------------------------------------------------------
// Linear

namespace {

struct LinearRun {
  std::vector<uint8_t> y;
  std::vector<int32_t> acc;
};

LinearRun run_linear(int M, int K, int N, int zx, int zy, bool relu, Isa isa, uint32_t seed) {
  std::mt19937 r(seed);
  auto x = random_u8(r, size_t(M) * K);
  auto w = random_s8(r, size_t(N) * K);
  std::vector<int32_t> b(N);
  for (auto& v : b) v = static_cast<int32_t>(r() % 20001) - 10000;
  std::vector<FixedPointMultiplier> m(N);
  for (int n = 0; n < N; ++n) m[n] = quantize_multiplier(40.0 / (std::sqrt(double(K)) * 5500.0) * (1 + n % 3));
  QLinearParams p;
  p.M = M, p.K = K, p.N = N, p.in_zero_point = zx, p.out_zero_point = zy, p.out_qmin = relu ? zy : 0;
  PackedLinearWeights pw = pack_linear_weights(p, w.data(), b.data(), m.data(), isa);
  LinearRun out;
  out.y.resize(size_t(M) * N);
  out.acc.resize(size_t(M) * N);
  qlinear(p, pw, x.data(), out.y.data());
  qlinear_i32(p, pw, x.data(), out.acc.data());
  // the int32 accumulators are the definition: check them exactly in 64 bits
  for (int mm = 0; mm < M; ++mm)
    for (int n = 0; n < N; ++n) {
      int64_t s = b[n];
      for (int k = 0; k < K; ++k) s += (int64_t(x[size_t(mm) * K + k]) - zx) * w[size_t(n) * K + k];
      REQUIRE(out.acc[size_t(mm) * N + n] == s);
      REQUIRE(out.y[size_t(mm) * N + n] == requantize(static_cast<int32_t>(s), m[n], zy, relu ? zy : 0, 255));
    }
  return out;
}

const int kLinearK[] = {1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 512};
const int kLinearN[] = {1, 3, 8, 15, 16, 17, 33, 64, 65, 130};

}  // namespace

TEST_CASE("qlinear reference: exact against the definition") {
  int i = 0;
  for (int K : kLinearK)
    for (int N : {1, 17, 65}) {
      run_linear(1 + i % 5, K, N, (i % 3) * 127, 3, i % 2 == 0, Isa::scalar, 100 + i);
      ++i;
    }
}

static void linear_matches_ref(Isa isa) {
  int i = 0;
  for (int K : kLinearK)
    for (int N : kLinearN) {
      const int M = 1 + (i * 5) % 13;
      const int zx = (i % 3) * 127 + (i % 3 == 2 ? 1 : 0);  // 0, 127, 255
      // run_linear checks the exact definition itself; equality with the reference follows
      run_linear(M, K, N, zx, 7, i % 2 == 1, isa, 1000 + i);
      ++i;
    }
  // Large enough to be split over the threads: by rows, and (M = 1) by channel panels.
  run_linear(1, 2048, 1100, 128, 7, false, isa, 7);
  run_linear(40, 700, 130, 3, 250, true, isa, 8);
  MESSAGE(iname(isa) << ": " << i + 2 << " linear shapes exact");
}
QTEST_PER_ISA("qlinear / qlinear_i32: SIMD == definition", linear_matches_ref)

TEST_CASE("qlinear_dynamic: close to float, identical bits on every level") {
  std::mt19937 rng(16);
  const int M = 5, K = 67, N = 33;
  std::vector<float> x(size_t(M) * K), wf(size_t(N) * K), bias(N);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : x) v = nd(rng);
  for (auto& v : wf) v = nd(rng) * 0.1f;
  for (auto& v : bias) v = nd(rng);
  std::vector<int8_t> wq(wf.size());
  std::vector<float> ws(N);
  for (int n = 0; n < N; ++n) {
    float amax = 0;
    for (int k = 0; k < K; ++k) amax = std::max(amax, std::fabs(wf[size_t(n) * K + k]));
    QParams q = choose_qparams_symmetric(amax);
    ws[n] = q.scale;
    for (int k = 0; k < K; ++k)
      wq[size_t(n) * K + k] = static_cast<int8_t>(quantize_val(wf[size_t(n) * K + k], 1.0f / q.scale, 0, -127, 127));
  }
  std::vector<float> first;
  for (Isa isa : table_isas()) {
    DynamicLinearWeights dw = pack_linear_dynamic(K, N, wq.data(), ws.data(), bias.data(), isa);
    std::vector<float> y(size_t(M) * N);
    qlinear_dynamic(dw, M, x.data(), y.data());
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        double ref = bias[n];
        for (int k = 0; k < K; ++k) ref += double(x[size_t(m) * K + k]) * wf[size_t(n) * K + k];
        REQUIRE_MESSAGE(std::fabs(y[size_t(m) * N + n] - ref) < 0.1, iname(isa) << " m" << m << " n" << n);
      }
    if (first.empty())
      first = y;
    else
      CHECK_MESSAGE(first_diff(first, y) < 0, iname(isa) << " differs from the reference");
  }
}

// The largest K pack_conv_weights accepts (2^16 - 1) with the largest zero-point correction:
// in_zp 255 times a weight sum of -128 * K is 2139095040, within int32 only just. The packed bias
// (bias - in_zp * sum(w), computed in int64 and wrapped to 32 bits) and the accumulation must give
// the exact int64 result on every level.
static void conv_largest_k(Isa isa) {
  QConvParams p;
  p.H = p.W = 1;
  p.C = (1 << 16) - 1;
  p.OC = 2;
  p.in_zero_point = 255;
  p.out_zero_point = 100;
  std::vector<int8_t> w(size_t(2) * p.C);
  std::fill(w.begin(), w.begin() + p.C, int8_t(-128));
  std::fill(w.begin() + p.C, w.end(), int8_t(127));
  const int64_t dot0 = int64_t(-255) * -128 * p.C, dot1 = int64_t(-255) * 127 * p.C;  // input all 0
  const int32_t bias[2] = {static_cast<int32_t>(40 - dot0), static_cast<int32_t>(-30 - dot1)};
  std::vector<FixedPointMultiplier> m(2, quantize_multiplier(1.0));
  PackedConvWeights pw = pack_conv_weights(p, w.data(), bias, m.data(), isa);
  std::vector<uint8_t> x(size_t(p.C), 0), y(2);
  qconv2d(p, pw, x.data(), y.data());
  CHECK(int(y[0]) == 140);
  CHECK(int(y[1]) == 70);
}
QTEST_PER_ISA("qconv2d: the largest K with the largest zero-point correction", conv_largest_k)
