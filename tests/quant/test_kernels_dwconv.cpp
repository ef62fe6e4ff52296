// Depthwise 3x3 (qdwconv2d_3x3) and grouped (qconv2d_grouped__ref) int8 kernels: every SIMD level
// against the reference byte for byte, the grouped reference against float and against the
// ordinary and depthwise references; and a skipped benchmark (-tc="bench*" --no-skip).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>

#include "core/threads.h"
#include "quant/kernels/dispatch.h"
#include "quant/kernels/qdwconv2d.h"
#include "test_kernels_util.h"

using namespace qtest;

namespace {

struct DwCase {
  int N = 1, H = 5, W = 5, C = 8, stride = 1, pad = 1;
  int zx = 128, zy = 128, qmin = 0, qmax = 255;
  int mult_kind = 0;  // 0: right shifts; 1: also left shifts (saturating) and zero multipliers
  std::string str() const {
    std::ostringstream s;
    s << "N" << N << " H" << H << " W" << W << " C" << C << " s" << stride << " p" << pad << " zx" << zx << " zy" << zy
      << " q[" << qmin << "," << qmax << "] m" << mult_kind;
    return s.str();
  }
  int OH() const { return (H + 2 * pad - 3) / stride + 1; }
  int OW() const { return (W + 2 * pad - 3) / stride + 1; }
};

// Owns the data and the packed arrays of one case for one ISA.
struct DwData {
  std::vector<uint8_t> x;
  std::vector<int8_t> w;  // (3, 3, C)
  std::vector<int32_t> bias;
  std::vector<FixedPointMultiplier> m;
  std::vector<int16_t> packed;
  std::vector<int32_t> bias_packed, mult, lshift, rshift;
  std::vector<uint8_t> zero_row;
  QDwConvArgs a{};
};

void make_dw(const DwCase& c, std::mt19937& rng, DwData& d) {
  d.x = random_u8(rng, size_t(c.N) * c.H * c.W * c.C);
  d.w = random_s8(rng, size_t(9) * c.C);
  std::uniform_int_distribution<int> bd(-40000, 40000);
  d.bias.resize(c.C);
  for (auto& b : d.bias) b = bd(rng);
  // accumulators spread ~ 3 * 74 * 74 ~ 16000: multipliers around 60 / 16000 give ~60 output levels
  std::uniform_real_distribution<double> md(0.3, 3.0);
  d.m.resize(c.C);
  for (int i = 0; i < c.C; ++i) {
    double real = md(rng) * 60.0 / 16000.0;
    if (c.mult_kind == 1 && i % 3 == 1) real *= 1024.0;  // shift > 0: saturating left shift
    if (c.mult_kind == 1 && i % 5 == 2) real = 0.0;
    if (c.mult_kind == 1 && i % 7 == 3) real = 1e-7;  // large right shift
    d.m[i] = quantize_multiplier(real);
  }
  QDwConvArgs& a = d.a;
  a.N = c.N, a.H = c.H, a.W = c.W, a.C = c.C, a.OH = c.OH(), a.OW = c.OW(), a.stride = c.stride, a.pad = c.pad;
  a.in_zp = c.zx, a.out_zp = c.zy, a.out_qmin = c.qmin, a.out_qmax = c.qmax;
  a.weight = d.w.data();
  a.bias = d.bias.data();
  a.requant = d.m.data();
}

void pack_for(DwData& d, Isa isa) {
  QDwConvArgs& a = d.a;
  const int Cp = dwconv_padded_channels(a.C);
  d.bias_packed.assign(Cp, -1), d.mult.assign(Cp, -1), d.lshift.assign(Cp, -1), d.rshift.assign(Cp, -1);
  d.zero_row.assign(Cp, 0);
  pack_dwconv_3x3_channels(d.bias_packed.data(), d.mult.data(), d.lshift.data(), d.rshift.data(), d.zero_row.data(), a);
  a.bias_packed = d.bias_packed.data(), a.rq_multiplier = d.mult.data(), a.rq_lshift = d.lshift.data();
  a.rq_rshift = d.rshift.data(), a.zero_row = d.zero_row.data();
  const KernelTable& k = kernels_for(isa);
  const size_t bytes = k.dwconv_packed_bytes ? k.dwconv_packed_bytes(a.C) : 0;
  d.packed.assign(bytes / 2 + 1, 0x5A5A);  // +1: the size is checked below
  if (k.dwconv_pack) k.dwconv_pack(d.packed.data(), a);
  REQUIRE(d.packed.back() == 0x5A5A);  // the packer wrote no more than it said
  a.packed = d.packed.data();
}

// The level's kernel, as the runtime picks it.
QDwConv2dKernel dw_kernel(Isa isa) { return kernels_for(isa).qdwconv2d_3x3; }

// The rows of the N*OH grid in random chunks (one call per chunk).
std::vector<uint8_t> run_dw(const DwData& d, Isa isa, std::mt19937& rng) {
  const QDwConvArgs& a = d.a;
  const int64_t rows = int64_t(a.N) * a.OH;
  std::vector<uint8_t> y(size_t(rows) * a.OW * a.C, 0xA5);
  std::uniform_int_distribution<int64_t> step(1, std::max<int64_t>(1, rows / 2));
  for (int64_t r = 0; r < rows;) {
    const int64_t e = std::min(rows, r + step(rng));
    dw_kernel(isa)(y.data(), d.x.data(), a, r, e);
    r = e;
  }
  return y;
}

std::vector<DwCase> dw_sweep() {
  std::vector<DwCase> v;
  const int chans[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 96, 144};
  const int sizes[] = {1, 2, 3, 4, 5, 7, 8, 11};
  const int zps[] = {0, 128, 255};
  int i = 0;
  for (int C : chans)
    for (int k = 0; k < 8; ++k, ++i) {
      DwCase c;
      c.C = C;
      c.H = sizes[(i * 3 + k) % 8];
      c.W = sizes[(i * 5 + 2 * k + 1) % 8];
      c.stride = 1 + (k % 2);
      c.pad = (k % 4 == 3) ? 0 : 1;
      if (c.pad == 0 && (c.H < 3 || c.W < 3)) c.pad = 1;
      c.N = (k % 3 == 2) ? 3 : 1;
      c.zx = zps[i % 3];
      c.zy = zps[(i / 3 + k) % 3];
      if (k % 4 == 1) c.qmin = c.zy, c.qmax = std::min(255, c.zy + 40);  // ReLU6-like
      if (c.qmin > c.qmax) c.qmin = c.qmax;
      c.mult_kind = (k % 3 == 1) ? 1 : 0;
      v.push_back(c);
    }
  // MobileNetV2 shapes shrunk in space: interior columns, wide rows
  auto add = [&](int H, int C, int s, int pad = 1) {
    DwCase c;
    c.H = c.W = H, c.C = C, c.stride = s, c.pad = pad;
    c.zx = 3, c.zy = 0, c.qmin = 0, c.qmax = 40;
    v.push_back(c);
  };
  add(19, 32, 1);
  add(18, 96, 2);
  add(13, 144, 1);
  add(14, 144, 2);
  add(9, 576, 1);
  add(7, 960, 1);
  add(12, 40, 1);  // C % 32 = 8: masked / overlapping tails on interior pixels
  add(10, 17, 2);
  // Stride 1 without padding and with 2: the interior columns' range moves with the padding.
  add(11, 64, 1, 0);
  add(10, 33, 1, 2);
  add(9, 96, 1, 0);
  return v;
}

void check_dw_isa(Isa isa) {
  std::mt19937 rng(21);
  int compared = 0;
  for (const DwCase& c : dw_sweep()) {
    DwData d;
    make_dw(c, rng, d);
    pack_for(d, isa);
    const auto want = run_dw(d, Isa::scalar, rng);
    const auto got = run_dw(d, isa, rng);
    const int64_t at = first_diff(want, got);
    REQUIRE_MESSAGE(at < 0, iname(isa) << " " << c.str() << ": first difference at byte " << at << " (pixel "
                                       << at / c.C << " channel " << at % c.C << "): ref " << int(want[at]) << " got "
                                       << int(got[at]));
    ++compared;
  }
  MESSAGE(iname(isa) << ": " << compared << " depthwise cases byte-identical to the reference");
}

// A call for some rows writes exactly those rows.
void check_dw_rows_only(Isa isa) {
  std::mt19937 rng(5);
  DwCase c;
  c.N = 2, c.H = 7, c.W = 6, c.C = 33, c.stride = 1;
  DwData d;
  make_dw(c, rng, d);
  pack_for(d, isa);
  const int64_t row_bytes = int64_t(c.OW()) * c.C;
  std::vector<uint8_t> y(size_t(c.N) * c.OH() * row_bytes, 0xA5);
  dw_kernel(isa)(y.data(), d.x.data(), d.a, 5, 9);
  const auto full = run_dw(d, Isa::scalar, rng);
  for (int64_t i = 0; i < int64_t(y.size()); ++i) {
    const bool inside = i >= 5 * row_bytes && i < 9 * row_bytes;
    REQUIRE_MESSAGE(y[i] == (inside ? full[i] : 0xA5), iname(isa) << " byte " << i);
  }
}

}  // namespace

QTEST_PER_ISA("qdwconv2d_3x3: SIMD == reference, byte for byte", check_dw_isa)

TEST_CASE("qdwconv2d_3x3 in the kernel tables: each level's kernel, its name and its packer") {
  // The names are the symbols': a table that names one kernel and calls another fails here.
  const std::pair<QDwConv2dKernel, std::string> known[] = {{qdwconv2d_3x3__ref, "qdwconv2d_3x3__ref"},
                                                           {qdwconv2d_3x3__avx2, "qdwconv2d_3x3__avx2"},
                                                           {qdwconv2d_3x3__avx512vnni, "qdwconv2d_3x3__avx512vnni"}};
  const std::map<Isa, std::string> want = {{Isa::scalar, "qdwconv2d_3x3__ref"},
                                           {Isa::avx2, "qdwconv2d_3x3__avx2"},
                                           {Isa::avx512, "qdwconv2d_3x3__avx2"},
                                           {Isa::avx512vnni, "qdwconv2d_3x3__avx512vnni"}};
  for (Isa isa : table_isas()) {
    CAPTURE(iname(isa));
    const KernelTable& k = kernels_for(isa);
    REQUIRE_UNARY(k.qdwconv2d_3x3 != nullptr);
    CHECK(std::string(k.qdwconv2d_3x3_name) == want.at(isa));
    int found = 0;
    for (auto& [fn, name] : known)
      if (fn == k.qdwconv2d_3x3) found += name == k.qdwconv2d_3x3_name;
    CHECK(found == 1);
    // The scalar reference reads the weights as given; every SIMD kernel has its packer.
    CHECK((k.dwconv_pack == nullptr) == (k.qdwconv2d_3x3 == qdwconv2d_3x3__ref));
    CHECK((k.dwconv_packed_bytes == nullptr) == (k.dwconv_pack == nullptr));
  }
}
QTEST_PER_ISA("qdwconv2d_3x3: a row range writes only its rows", check_dw_rows_only)

TEST_CASE("qdwconv2d_3x3 reference: rows only, and its own bad geometry is refused") {
  check_dw_rows_only(Isa::scalar);
  std::mt19937 rng(3);
  DwCase c;
  DwData d;
  make_dw(c, rng, d);
  d.a.OH = 4;
  std::vector<uint8_t> y(1000);
  CHECK_THROWS(qdwconv2d_3x3__ref(y.data(), d.x.data(), d.a, 0, 1));
}

TEST_CASE("qdwconv2d_3x3 packing: sizes and the documented layout") {
  CHECK(dwconv_padded_channels(1) == 32);
  CHECK(dwconv_padded_channels(32) == 32);
  CHECK(dwconv_padded_channels(33) == 64);
  CHECK(pack_dwconv_3x3_bytes__avx2(16) == 16 * 20);
  CHECK(pack_dwconv_3x3_bytes__avx2(17) == 2 * 16 * 20);
  CHECK(pack_dwconv_3x3_bytes__avx2(3) == 16 * 20);
  CHECK(pack_dwconv_3x3_bytes__avx512vnni(33) == 2 * 32 * 20);
  // w[tap][c] = tap * 10 + c (fits in int8 for C = 9 and 20)
  for (int C : {9, 20}) {
    std::vector<int8_t> w(9 * C);
    for (int t = 0; t < 9; ++t)
      for (int ch = 0; ch < C; ++ch) w[t * C + ch] = static_cast<int8_t>(t * 10 + ch);
    QDwConvArgs a{};
    a.C = C;
    a.weight = w.data();
    std::vector<int16_t> p2(pack_dwconv_3x3_bytes__avx2(C) / 2), p5(pack_dwconv_3x3_bytes__avx512vnni(C) / 2);
    pack_dwconv_3x3__avx2(p2.data(), a);
    pack_dwconv_3x3__avx512vnni(p5.data(), a);
    auto expect = [&](int c0, int p, int h, int i, int j) {
      const int tap = 2 * p + j, ch = c0 + (i / 4) * 8 + 4 * h + i % 4;
      return (tap < 9 && ch < C) ? tap * 10 + ch : 0;
    };
    const int nb2 = int(p2.size()) / (16 * 10);
    for (int b = 0; b < nb2; ++b) {
      const int c0 = (b + 1) * 16 <= C ? b * 16 : std::max(C - 16, 0);
      for (int p = 0; p < 5; ++p)
        for (int h = 0; h < 2; ++h)
          for (int i = 0; i < 8; ++i)
            for (int j = 0; j < 2; ++j)
              REQUIRE(p2[size_t(b) * 160 + ((p * 2 + h) * 8 + i) * 2 + j] == expect(c0, p, h, i, j));
    }
    for (int p = 0; p < 5; ++p)
      for (int h = 0; h < 2; ++h)
        for (int i = 0; i < 16; ++i)
          for (int j = 0; j < 2; ++j) REQUIRE(p5[((p * 2 + h) * 16 + i) * 2 + j] == expect(0, p, h, i, j));
  }
}

// ---------------------------------------------------------------------------
// Grouped reference

namespace {

struct GCase {
  int N, H, W, C, OC, groups, KH, KW, sh, sw, ph, pw, dh, dw;
  int zx, zy;
};

struct GData {
  std::vector<uint8_t> x;
  std::vector<int8_t> w;  // (OC, KH, KW, C/groups)
  std::vector<int32_t> bias;
  std::vector<FixedPointMultiplier> m;
  std::vector<double> real_m;
  float sx = 0.02f, sy = 0;
  std::vector<float> sw;
  QConvArgs a{};
};

void make_g(const GCase& c, std::mt19937& rng, GData& d) {
  const int Cg = c.C / c.groups, K = c.KH * c.KW * Cg;
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
  d.sy = static_cast<float>(d.sx * mean_sw * std::sqrt(double(K)) * 74.0 * 74.0 / 60.0);
  d.m.resize(c.OC);
  d.real_m.resize(c.OC);
  for (int o = 0; o < c.OC; ++o) {
    d.real_m[o] = double(d.sx) * d.sw[o] / d.sy;
    d.m[o] = quantize_multiplier(d.real_m[o]);
  }
  QConvArgs& a = d.a;
  a.N = c.N, a.H = c.H, a.W = c.W, a.C = c.C, a.OC = c.OC, a.KH = c.KH, a.KW = c.KW;
  a.OH = (c.H + 2 * c.ph - c.dh * (c.KH - 1) - 1) / c.sh + 1;
  a.OW = (c.W + 2 * c.pw - c.dw * (c.KW - 1) - 1) / c.sw + 1;
  a.stride_h = c.sh, a.stride_w = c.sw, a.pad_h = c.ph, a.pad_w = c.pw, a.dilation_h = c.dh, a.dilation_w = c.dw;
  a.in_zp = c.zx, a.out_zp = c.zy, a.out_qmin = 0, a.out_qmax = 255;
  a.weight = d.w.data(), a.bias = d.bias.data(), a.requant = d.m.data();
}

std::vector<GCase> g_cases() {
  return {
      {1, 5, 6, 4, 6, 2, 3, 3, 1, 1, 1, 1, 1, 1, 128, 128},   {2, 7, 5, 12, 8, 4, 3, 3, 2, 1, 1, 0, 1, 1, 0, 255},
      {1, 6, 6, 6, 9, 3, 3, 3, 1, 2, 2, 1, 2, 1, 255, 0},     {1, 9, 8, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 77, 10},
      {1, 8, 8, 8, 16, 8, 5, 5, 2, 2, 2, 2, 1, 1, 128, 40},   {3, 4, 4, 9, 3, 3, 1, 1, 1, 1, 0, 0, 1, 1, 20, 200},
      {1, 7, 7, 32, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0},    {1, 5, 5, 10, 10, 1, 3, 3, 1, 1, 1, 1, 1, 1, 128, 128},
      {1, 11, 10, 6, 12, 6, 3, 3, 1, 1, 2, 2, 2, 2, 60, 128},
  };
}

}  // namespace

TEST_CASE("qconv2d_grouped reference: within one step of dequantize -> float grouped conv -> requantize") {
  std::mt19937 rng(8);
  for (const GCase& c : g_cases()) {
    GData d;
    make_g(c, rng, d);
    const QConvArgs& a = d.a;
    const int64_t P = int64_t(a.N) * a.OH * a.OW;
    std::vector<uint8_t> y(size_t(P) * a.OC);
    qconv2d_grouped__ref(y.data(), nullptr, d.x.data(), a, c.groups, 0, P, 0, a.OC);
    const int Cg = c.C / c.groups, OCg = c.OC / c.groups;
    int64_t exact = 0, total = 0;
    for (int64_t p = 0; p < P; ++p) {
      const int n = int(p / (int64_t(a.OH) * a.OW)), oh = int(p / a.OW % a.OH), ow = int(p % a.OW);
      for (int o = 0; o < c.OC; ++o) {
        const double s_acc = double(d.sx) * d.sw[o];
        double real = d.bias[o] * s_acc;
        for (int kh = 0; kh < c.KH; ++kh)
          for (int kw = 0; kw < c.KW; ++kw) {
            const int ih = oh * c.sh - c.ph + kh * c.dh, iw = ow * c.sw - c.pw + kw * c.dw;
            if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
            for (int ci = 0; ci < Cg; ++ci) {
              const int cin = o / OCg * Cg + ci;
              const double xr = d.sx * (int(d.x[((size_t(n) * c.H + ih) * c.W + iw) * c.C + cin]) - c.zx);
              const double wr = d.sw[o] * double(d.w[((size_t(o) * c.KH + kh) * c.KW + kw) * Cg + ci]);
              real += xr * wr;
            }
          }
        const double q = std::nearbyint(real / s_acc * d.real_m[o]) + c.zy;
        const double want = std::min<double>(255, std::max<double>(0, q));
        const int got = y[size_t(p) * c.OC + o];
        REQUIRE_MESSAGE(std::fabs(got - want) <= 1.0, "groups " << c.groups << " C" << c.C << " OC" << c.OC << " pixel "
                                                                << p << " oc " << o << ": ref " << got << " float "
                                                                << want);
        exact += got == want;
        ++total;
      }
    }
    CHECK(exact * 10 >= total * 9);
  }
}

TEST_CASE("qconv2d_grouped reference: groups 1 == qconv2d__ref (bytes and accumulators)") {
  std::mt19937 rng(9);
  for (GCase c : g_cases()) {
    c.groups = 1;
    GData d;
    make_g(c, rng, d);
    const QConvArgs& a = d.a;
    const int64_t P = int64_t(a.N) * a.OH * a.OW;
    std::vector<uint8_t> y1(size_t(P) * a.OC, 1), y2(size_t(P) * a.OC, 2);
    std::vector<int32_t> i1(size_t(P) * a.OC, 1), i2(size_t(P) * a.OC, 2);
    qconv2d_grouped__ref(y1.data(), nullptr, d.x.data(), a, 1, 0, P, 0, a.OC);
    qconv2d__ref(y2.data(), nullptr, d.x.data(), a, 0, P, 0, a.OC, nullptr);
    qconv2d_grouped__ref(nullptr, i1.data(), d.x.data(), a, 1, 0, P, 0, a.OC);
    qconv2d__ref(nullptr, i2.data(), d.x.data(), a, 0, P, 0, a.OC, nullptr);
    CHECK(first_diff(y1, y2) == -1);
    CHECK(first_diff(i1, i2) == -1);
  }
}

TEST_CASE("qconv2d_grouped reference: groups == C == OC, 3x3 == qdwconv2d_3x3__ref") {
  std::mt19937 rng(10);
  for (const DwCase& c : dw_sweep()) {
    DwData dd;
    make_dw(c, rng, dd);
    // the same weights in the grouped layout (OC, 3, 3, 1)
    std::vector<int8_t> wg(size_t(9) * c.C);
    for (int ch = 0; ch < c.C; ++ch)
      for (int t = 0; t < 9; ++t) wg[size_t(ch) * 9 + t] = dd.w[size_t(t) * c.C + ch];
    QConvArgs a{};
    a.N = c.N, a.H = c.H, a.W = c.W, a.C = c.C, a.OC = c.C, a.KH = a.KW = 3, a.OH = c.OH(), a.OW = c.OW();
    a.stride_h = a.stride_w = c.stride, a.pad_h = a.pad_w = c.pad, a.dilation_h = a.dilation_w = 1;
    a.in_zp = c.zx, a.out_zp = c.zy, a.out_qmin = c.qmin, a.out_qmax = c.qmax;
    a.weight = wg.data(), a.bias = dd.bias.data(), a.requant = dd.m.data();
    const int64_t P = int64_t(a.N) * a.OH * a.OW;
    std::vector<uint8_t> yg(size_t(P) * a.OC, 1);
    qconv2d_grouped__ref(yg.data(), nullptr, dd.x.data(), a, c.C, 0, P, 0, a.OC);
    const auto yd = run_dw(dd, Isa::scalar, rng);
    REQUIRE_MESSAGE(first_diff(yg, yd) == -1, c.str());
  }
}

TEST_CASE("qconv2d_grouped reference: channel counts not divisible by groups are refused") {
  std::mt19937 rng(1);
  GData d;
  make_g({1, 3, 3, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0}, rng, d);
  std::vector<uint8_t> y(1000);
  CHECK_THROWS(qconv2d_grouped__ref(y.data(), nullptr, d.x.data(), d.a, 4, 0, 1, 0, 1));
}

// ---------------------------------------------------------------------------
// The driver: pack_conv_weights + qconv2d pick the depthwise kernels or the grouped reference by
// geometry, pack once, split rows over the pool; bytes equal the grouped reference on every level.

TEST_CASE("qconv2d driver: depthwise and grouped convs on every level == qconv2d_grouped__ref") {
  qforge::set_num_threads(2);
  struct DCase {
    GCase g;
    ConvPath path;
  };
  const DCase cases[] = {
      {{2, 30, 29, 72, 72, 72, 3, 3, 1, 1, 1, 1, 1, 1, 5, 0}, ConvPath::kDepthwise3x3},  // split over threads
      {{1, 31, 30, 40, 40, 40, 3, 3, 2, 2, 1, 1, 1, 1, 128, 7}, ConvPath::kDepthwise3x3},
      {{3, 6, 7, 17, 17, 17, 3, 3, 1, 1, 0, 0, 1, 1, 255, 128}, ConvPath::kDepthwise3x3},
      {{1, 9, 8, 16, 16, 16, 3, 3, 1, 1, 2, 2, 2, 2, 77, 10}, ConvPath::kGroupedRef},  // dilation 2
      {{1, 9, 9, 16, 16, 16, 3, 3, 2, 1, 1, 1, 1, 1, 0, 0}, ConvPath::kGroupedRef},    // stride 2x1
      {{1, 8, 8, 8, 16, 8, 5, 5, 2, 2, 2, 2, 1, 1, 128, 40}, ConvPath::kGroupedRef},
      {{2, 7, 5, 12, 8, 4, 3, 3, 2, 1, 1, 0, 1, 1, 0, 255}, ConvPath::kGroupedRef},
  };
  std::mt19937 rng(12);
  for (const DCase& dc : cases) {
    const GCase& c = dc.g;
    CAPTURE(c.C);
    CAPTURE(c.groups);
    GData d;
    make_g(c, rng, d);
    d.a.out_qmin = std::min(c.zy, 250), d.a.out_qmax = std::min(255, d.a.out_qmin + 60);  // a ReLU6-like clamp
    const int Cg = c.C / c.groups;
    // PyTorch's (OC, C/groups, KH, KW) from the reference's (OC, KH, KW, C/groups).
    std::vector<int8_t> w_oihw(d.w.size());
    for (int o = 0; o < c.OC; ++o)
      for (int h = 0; h < c.KH; ++h)
        for (int x = 0; x < c.KW; ++x)
          for (int ci = 0; ci < Cg; ++ci)
            w_oihw[((size_t(o) * Cg + ci) * c.KH + h) * c.KW + x] = d.w[((size_t(o) * c.KH + h) * c.KW + x) * Cg + ci];
    QConvParams p;
    p.N = c.N, p.H = c.H, p.W = c.W, p.C = c.C, p.OC = c.OC, p.KH = c.KH, p.KW = c.KW;
    p.stride_h = c.sh, p.stride_w = c.sw, p.pad_h = c.ph, p.pad_w = c.pw, p.dilation_h = c.dh, p.dilation_w = c.dw;
    p.groups = c.groups;
    p.in_zero_point = c.zx, p.out_zero_point = c.zy, p.out_qmin = d.a.out_qmin, p.out_qmax = d.a.out_qmax;
    CAPTURE(std::string(conv_path_name(dc.path)));
    REQUIRE(conv_path(p) == dc.path);
    const QConvArgs& a = d.a;
    const int64_t P = int64_t(a.N) * a.OH * a.OW;
    std::vector<uint8_t> want(size_t(P) * a.OC, 1);
    qconv2d_grouped__ref(want.data(), nullptr, d.x.data(), a, c.groups, 0, P, 0, a.OC);
    // The residual join after it: the conv then qadd, in turn.
    const std::vector<uint8_t> res = random_u8(rng, want.size());
    const QAddParams add = make_qadd_params({0.05f, 100, 0, 255}, {0.03f, 20, 0, 255}, {0.06f, 0, 0, 255}, false);
    std::vector<uint8_t> want_add(want.size());
    qadd__ref(want_add.data(), want.data(), res.data(), int64_t(want.size()), add);
    for (Isa isa : table_isas()) {
      CAPTURE(iname(isa));
      PackedConvWeights pw = pack_conv_weights(p, w_oihw.data(), d.bias.data(), d.m.data(), isa);
      CHECK(pw.path == dc.path);
      std::vector<uint8_t> got(want.size(), 0xA5), got_add(want.size(), 0xA5);
      qconv2d(p, pw, d.x.data(), got.data());
      REQUIRE_MESSAGE(first_diff(want, got) == -1, "first difference at " << first_diff(want, got));
      qconv2d_add(p, pw, d.x.data(), add, res.data(), got_add.data());
      REQUIRE(first_diff(want_add, got_add) == -1);
    }
  }
  qforge::set_num_threads(1);
}

// ---------------------------------------------------------------------------
// Benchmark (skipped by default): one kernel call over the whole output, 1 thread.

namespace {

double dw_best_time(const std::function<void()>& f, double min_s) {
  using clk = std::chrono::steady_clock;
  f();
  double best = 1e9, total = 0;
  int runs = 0;
  while ((total < min_s || runs < 5) && runs < 2000) {
    const auto t0 = clk::now();
    f();
    const double dt = std::chrono::duration<double>(clk::now() - t0).count();
    best = std::min(best, dt);
    total += dt;
    ++runs;
  }
  return best;
}

}  // namespace

TEST_CASE("bench qdwconv2d_3x3 MobileNetV2 shapes" * doctest::skip()) {
  struct S {
    const char* name;
    int H, C, s;
  };
  const S shapes[] = {{"112x112x32 s1", 112, 32, 1},
                      {"112x112x96 s2", 112, 96, 2},
                      {"56x56x144 s1", 56, 144, 1},
                      {"14x14x576 s1", 14, 576, 1},
                      {"7x7x960 s1", 7, 960, 1}};
  std::printf("\n%-16s %-10s %10s %9s %9s\n", "shape", "isa", "us/call", "GB/s", "GMAC/s");
  for (Isa isa : table_isas()) {
    for (const S& sh : shapes) {
      std::mt19937 rng(1);
      DwCase c;
      c.H = c.W = sh.H, c.C = sh.C, c.stride = sh.s;
      c.zx = 0, c.zy = 0, c.qmin = 0, c.qmax = 40;
      DwData d;
      make_dw(c, rng, d);
      pack_for(d, isa);
      std::vector<uint8_t> y(size_t(c.OH()) * c.OW() * c.C);
      const int64_t rows = c.OH();
      const double t =
          dw_best_time([&] { dw_kernel(isa)(y.data(), d.x.data(), d.a, 0, rows); }, isa == Isa::scalar ? 0.0 : 0.3);
      const double bytes = double(d.x.size()) + double(y.size());
      const double macs = double(y.size()) * 9;
      std::printf("%-16s %-10s %10.1f %9.2f %9.2f\n", sh.name, isa_name(isa), t * 1e6, bytes / t / 1e9, macs / t / 1e9);
    }
  }
}
