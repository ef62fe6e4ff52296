// The batch-major conv kernel and the residual join fused into conv epilogues: every level against
// the reference (qconv2d__ref, then qadd__ref for the join), byte for byte.
#include <algorithm>
#include <sstream>

#include "core/threads.h"
#include "test_kernels_util.h"

using namespace qtest;

namespace {

struct Case {
  int N, H, W, C, OC, K, stride, pad;
  int zx, zy, zr, zo;
  bool relu_conv, relu_add;
  std::string str() const {
    std::ostringstream s;
    s << "N" << N << " H" << H << " W" << W << " C" << C << " OC" << OC << " k" << K << " s" << stride << " p" << pad
      << " zx" << zx << " zy" << zy << " zr" << zr << " zo" << zo << (relu_conv ? " relu-conv" : "")
      << (relu_add ? " relu-add" : "");
    return s.str();
  }
  QConvParams params() const {
    QConvParams p;
    p.N = N, p.H = H, p.W = W, p.C = C, p.OC = OC, p.KH = p.KW = K;
    p.stride_h = p.stride_w = stride, p.pad_h = p.pad_w = pad;
    p.in_zero_point = zx, p.out_zero_point = zy, p.out_qmin = relu_conv ? zy : 0, p.out_qmax = 255;
    return p;
  }
};

// Around the tile sizes (up to 5 images, balanced), the panel widths (16..64 channels), borders
// (padding 1 and 2 on 1x1 to 8x8 images, strides 1 and 2), zero points 0 / 128 / 255.
std::vector<Case> cases() {
  std::vector<Case> v;
  const int ns[] = {6, 7, 11, 12, 13, 17, 64};
  const int cs[] = {4, 8, 16, 20, 64};
  const int ocs[] = {1, 15, 16, 17, 48, 64, 65, 130};
  const int zps[] = {0, 128, 255};
  int i = 0;
  for (int n : ns)
    for (int c : cs)
      for (int oc : ocs) {
        if (n == 64 && (c > 16 || oc > 64)) continue;  // keep the scalar reference quick
        Case k{};
        k.N = n, k.C = c, k.OC = oc;
        k.H = 1 + i % 8;
        k.W = 1 + (i * 5) % 8;
        k.K = i % 5 == 4 ? 1 : 3;
        k.pad = k.K == 1 ? (i % 2) : 1 + (i % 7 == 3);
        k.stride = 1 + (i % 3 == 2);
        k.zx = zps[i % 3], k.zy = zps[(i / 3) % 3], k.zr = zps[(i + 1) % 3], k.zo = zps[(i / 2) % 3];
        k.relu_conv = i % 4 == 1;
        k.relu_add = i % 2 == 0;
        v.push_back(k);
        ++i;
      }
  // ResNet18 28x28 layers 3 and 4, shrunk in batch: the shapes the runtime sends to the batch-major kernel.
  v.push_back({12, 4, 4, 512, 512, 3, 1, 1, 3, 7, 9, 5, false, true});
  v.push_back({7, 7, 7, 256, 512, 3, 2, 1, 0, 128, 11, 0, false, false});
  v.push_back({13, 7, 7, 256, 256, 3, 1, 1, 2, 120, 4, 6, false, true});
  // Larger images: the driver keeps the pixel-tile kernel there (fused join in its epilogue).
  v.push_back({6, 14, 14, 128, 128, 3, 1, 1, 5, 130, 0, 3, false, true});
  v.push_back({2, 9, 11, 16, 32, 3, 1, 1, 1, 2, 3, 4, false, true});
  return v;
}

struct Data {
  std::vector<uint8_t> x, res;
  std::vector<int8_t> w;
  std::vector<int32_t> bias;
  std::vector<FixedPointMultiplier> m;
  QAddParams add;
};

Data make(const Case& c, std::mt19937& rng) {
  Data d;
  const int K = c.K * c.K * c.C;
  const QConvParams p = c.params();
  d.x = random_u8(rng, size_t(c.N) * c.H * c.W * c.C);
  d.res = random_u8(rng, size_t(c.N) * p.OH() * p.OW() * c.OC);
  d.w = random_s8(rng, size_t(c.OC) * K);
  std::uniform_int_distribution<int> bd(-3000 * K / 8 - 100, 3000 * K / 8 + 100);
  for (int o = 0; o < c.OC; ++o) d.bias.push_back(bd(rng));
  std::uniform_real_distribution<double> md(0.3, 1.0);
  for (int o = 0; o < c.OC; ++o) d.m.push_back(quantize_multiplier(md(rng) * 60.0 / (std::sqrt(double(K)) * 74 * 74)));
  std::uniform_real_distribution<float> sd(0.01f, 0.1f);
  d.add = make_qadd_params({sd(rng), c.zy}, {sd(rng), c.zr}, {sd(rng), c.zo}, c.relu_add);
  return d;
}

// The definition: reference conv, then the reference add.
std::vector<uint8_t> reference(const Case& c, const Data& d, bool with_add) {
  const QConvParams p = c.params();
  PackedConvWeights pw = pack_conv_weights(p, d.w.data(), d.bias.data(), d.m.data(), Isa::scalar);
  std::vector<uint8_t> y(d.res.size(), 0xA5);
  qconv2d(p, pw, d.x.data(), y.data());
  if (with_add) qadd__ref(y.data(), y.data(), d.res.data(), int64_t(y.size()), d.add);
  return y;
}

void check_level(Isa isa) {
  std::mt19937 rng(21);
  const KernelTable& k = kernels_for(isa);
  int pos_checked = 0;
  for (const Case& c : cases()) {
    CAPTURE(c.str());
    const Data d = make(c, rng);
    const QConvParams p = c.params();
    PackedConvWeights pw = pack_conv_weights(p, d.w.data(), d.bias.data(), d.m.data(), isa);
    const std::vector<uint8_t> want = reference(c, d, false), want_add = reference(c, d, true);
    // The drivers, on 1 and 2 threads (whichever kernel they pick).
    for (int threads : {1, 2}) {
      qforge::set_num_threads(threads);
      std::vector<uint8_t> y(want.size(), 0x5A), ya(want.size(), 0x5A);
      qconv2d(p, pw, d.x.data(), y.data());
      qconv2d_add(p, pw, d.x.data(), d.add, d.res.data(), ya.data());
      REQUIRE_MESSAGE(first_diff(y, want) == -1, "qconv2d, threads " << threads << ", byte " << first_diff(y, want));
      REQUIRE_MESSAGE(first_diff(ya, want_add) == -1,
                      "qconv2d_add, threads " << threads << ", byte " << first_diff(ya, want_add));
    }
    // The batch-major kernel itself, in pieces of positions and panels as the driver cuts them.
    QConvArgs a = pw.args(p);
    if (k.qconv2d_pos && !a.row_merged && a.kt == a.ktp) {
      REQUIRE(a.tap_wsum != nullptr);
      std::vector<uint8_t> scratch(conv_pos_scratch_bytes(a) + 64);
      const int P = p.OH() * p.OW();
      for (bool with_add : {false, true}) {
        a.residual = with_add ? d.res.data() : nullptr;
        a.add = d.add;
        std::vector<uint8_t> y(want.size(), 0x5A);
        for (int pos = 0; pos < P; pos += 2)
          for (int o = 0; o < c.OC; o += k.conv_panel_oc)
            k.qconv2d_pos(y.data(), d.x.data(), a, pos, std::min(P, pos + 2), o, std::min(c.OC, o + k.conv_panel_oc),
                          scratch.data());
        const auto& w = with_add ? want_add : want;
        REQUIRE_MESSAGE(first_diff(y, w) == -1, "qconv2d_pos" << (with_add ? " + add" : "") << ", byte "
                                                               << first_diff(y, w));
      }
      ++pos_checked;
    }
  }
  qforge::set_num_threads(0);
  if (k.qconv2d_pos) CHECK(pos_checked > 80);
  MESSAGE(iname(isa) << ": batch-major kernel checked directly on " << pos_checked << " cases");
}

}  // namespace

QTEST_PER_ISA("qconv2d_add and the batch-major conv: identical to qconv2d__ref then qadd__ref", check_level)

TEST_CASE("qconv2d_add reference level: conv then add") { check_level(Isa::scalar); }
