// Kernel benchmarks, not tests: skipped by default. Run with
//   test_quant -tc="bench*" --no-skip
// Prints GMAC/s per conv shape and ISA level, on 1 thread (one kernel call over the whole output)
// and on the pool's threads (the driver), and the total conv time of each network.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "core/threads.h"
#include "test_kernels_util.h"

using namespace qtest;

namespace {

struct Shape {
  const char* name;
  int count;  // occurrences in the network
  QConvParams p;
};

QConvParams conv(int N, int H, int C, int OC, int k, int s) {
  QConvParams p;
  p.N = N, p.H = p.W = H, p.C = C, p.OC = OC, p.KH = p.KW = k, p.stride_h = p.stride_w = s;
  p.pad_h = p.pad_w = k / 2;
  p.in_zero_point = 0;
  p.out_zero_point = 0;
  p.out_qmin = 0;  // ReLU
  return p;
}

std::vector<Shape> resnet18_224() {
  return {{"stem 7x7 s2 3->64 @224", 1, conv(1, 224, 3, 64, 7, 2)},
          {"l1 3x3 64->64 @56", 4, conv(1, 56, 64, 64, 3, 1)},
          {"l2 3x3 s2 64->128 @56", 1, conv(1, 56, 64, 128, 3, 2)},
          {"l2 3x3 128->128 @28", 3, conv(1, 28, 128, 128, 3, 1)},
          {"l2 ds 1x1 s2 64->128", 1, conv(1, 56, 64, 128, 1, 2)},
          {"l3 3x3 s2 128->256 @28", 1, conv(1, 28, 128, 256, 3, 2)},
          {"l3 3x3 256->256 @14", 3, conv(1, 14, 256, 256, 3, 1)},
          {"l3 ds 1x1 s2 128->256", 1, conv(1, 28, 128, 256, 1, 2)},
          {"l4 3x3 s2 256->512 @14", 1, conv(1, 14, 256, 512, 3, 2)},
          {"l4 3x3 512->512 @7", 3, conv(1, 7, 512, 512, 3, 1)},
          {"l4 ds 1x1 s2 256->512", 1, conv(1, 14, 256, 512, 1, 2)}};
}

std::vector<Shape> resnet18_28_b64() {
  return {{"stem 3x3 1->64 @28 b64", 1, conv(64, 28, 1, 64, 3, 1)},
          {"l1 3x3 64->64 @28 b64", 4, conv(64, 28, 64, 64, 3, 1)},
          {"l2 3x3 s2 64->128 @28 b64", 1, conv(64, 28, 64, 128, 3, 2)},
          {"l2 3x3 128->128 @14 b64", 3, conv(64, 14, 128, 128, 3, 1)},
          {"l2 ds 1x1 s2 64->128 b64", 1, conv(64, 28, 64, 128, 1, 2)},
          {"l3 3x3 s2 128->256 @14 b64", 1, conv(64, 14, 128, 256, 3, 2)},
          {"l3 3x3 256->256 @7 b64", 3, conv(64, 7, 256, 256, 3, 1)},
          {"l3 ds 1x1 s2 128->256 b64", 1, conv(64, 14, 128, 256, 1, 2)},
          {"l4 3x3 s2 256->512 @7 b64", 1, conv(64, 7, 256, 512, 3, 2)},
          {"l4 3x3 512->512 @4 b64", 3, conv(64, 4, 512, 512, 3, 1)},
          {"l4 ds 1x1 s2 256->512 b64", 1, conv(64, 7, 256, 512, 1, 2)}};
}

// Best of several runs, in seconds; runs for at least ~min_s in total.
double best_time(const std::function<void()>& f, double min_s = 0.2) {
  using clk = std::chrono::steady_clock;
  f();  // warm up
  double best = 1e9, total = 0;
  int runs = 0;
  while ((total < min_s || runs < 5) && runs < 1000) {
    const auto t0 = clk::now();
    f();
    const double dt = std::chrono::duration<double>(clk::now() - t0).count();
    best = std::min(best, dt);
    total += dt;
    ++runs;
  }
  return best;
}

void bench_network(const char* title, const std::vector<Shape>& shapes, bool with_scalar) {
  std::mt19937 rng(1);
  std::printf("\n== %s (threads: %d) ==\n", title, qforge::num_threads());
  std::printf("%-30s %6s %9s | %-10s %9s %9s %9s\n", "shape", "count", "MMAC", "isa", "GMAC/s 1t", "GMAC/s Nt",
              "ms Nt");
  for (Isa isa : table_isas()) {
    if (isa == Isa::scalar && !with_scalar) continue;
    const KernelTable& k = kernels_for(isa);
    double total_1t = 0, total_nt = 0, total_mac = 0;
    for (const Shape& s : shapes) {
      const QConvParams& p = s.p;
      const int64_t P = int64_t(p.N) * p.OH() * p.OW();
      const double macs = double(P) * p.OC * p.KH * p.KW * p.C;
      auto x = random_u8(rng, size_t(p.N) * p.H * p.W * p.C);
      auto w = random_s8(rng, size_t(p.OC) * p.C * p.KH * p.KW, -127, 127);
      std::vector<int32_t> b(p.OC, 100);
      std::vector<FixedPointMultiplier> m(p.OC, quantize_multiplier(1.0 / (p.C * p.KH * p.KW * 64.0)));
      PackedConvWeights pw = pack_conv_weights(p, w.data(), b.data(), m.data(), isa);
      std::vector<uint8_t> y(size_t(P) * p.OC);
      const QConvArgs a = pw.args(p);
      std::vector<uint64_t> scratch(conv_scratch_bytes(a, k.conv_mr, k.conv_chunk_tiles) / 8 + 1);
      const double min_s = isa == Isa::scalar ? 0.0 : 0.2;
      const double t1 =
          best_time([&] { k.qconv2d(y.data(), nullptr, x.data(), a, 0, P, 0, p.OC, scratch.data()); }, min_s);
      const double tn = best_time([&] { qconv2d(p, pw, x.data(), y.data()); }, min_s);
      std::printf("%-30s %6d %9.1f | %-10s %9.1f %9.1f %9.3f\n", s.name, s.count, macs / 1e6, isa_name(isa),
                  macs / t1 / 1e9, macs / tn / 1e9, tn * 1e3);
      total_1t += s.count * t1;
      total_nt += s.count * tn;
      total_mac += s.count * macs;
    }
    std::printf("%-30s %6s %9.1f | %-10s %9.1f %9.1f %9.3f   <- total conv: %.3f ms 1t, %.3f ms Nt\n", "TOTAL", "",
                total_mac / 1e6, isa_name(isa), total_mac / total_1t / 1e9, total_mac / total_nt / 1e9, total_nt * 1e3,
                total_1t * 1e3, total_nt * 1e3);
  }
}

}  // namespace

TEST_CASE("bench qconv2d ResNet18 224x224 batch 1" * doctest::skip()) {
  bench_network("ResNet18 224x224 batch 1", resnet18_224(), false);
}

TEST_CASE("bench qconv2d ResNet18 28x28 batch 64" * doctest::skip()) {
  bench_network("ResNet18 small stem 28x28 batch 64", resnet18_28_b64(), false);
}

TEST_CASE("bench elementwise" * doctest::skip()) {
  std::mt19937 rng(2);
  std::printf("\n== elementwise (threads: %d) ==\n", qforge::num_threads());
  const int64_t n = 56 * 56 * 64;
  auto a = random_u8(rng, n), b = random_u8(rng, n);
  std::vector<uint8_t> y(n);
  std::vector<float> xf(3 * 224 * 224), yf(3 * 224 * 224);
  for (auto& v : xf) v = float(rng() % 1000) / 500.0f - 1.0f;
  std::vector<uint8_t> xq(xf.size());
  const QParams q{0.01f, 128, 0, 255};
  const QAddParams ap = make_qadd_params(q, {0.02f, 100, 0, 255}, {0.03f, 0, 0, 255}, true);
  const QPool2dParams mp = make_pool2d_params(1, 112, 112, 64, 3, 3, 2, 2, 1, 1);
  std::vector<uint8_t> big(size_t(112) * 112 * 64), pooled(size_t(56) * 56 * 64);
  const auto gp = make_global_avgpool_params(1, 7, 7, 512, q, q);
  std::vector<uint8_t> g(512);
  for (Isa isa : table_isas()) {
    const double t_add = best_time([&] { qadd(ap, n, a.data(), b.data(), y.data(), isa); });
    const double t_mp = best_time([&] { qmaxpool2d(mp, big.data(), pooled.data(), isa); });
    const double t_gp = best_time([&] { qglobal_avgpool(gp, big.data(), g.data(), isa); });
    const double t_q = best_time([&] { quantize_nchw_to_nhwc(q, 1, 3, 224, 224, xf.data(), xq.data(), isa); });
    const double t_dq = best_time([&] { dequantize_nhwc_to_nchw(q, 1, 3, 224, 224, xq.data(), yf.data(), isa); });
    std::printf(
        "%-10s qadd 56x56x64 %7.1f us | maxpool 112->56 x64 %7.1f us | gavgpool 7x7x512 %6.1f us | "
        "quantize 3x224x224 %7.1f us | dequantize %7.1f us\n",
        isa_name(isa), t_add * 1e6, t_mp * 1e6, t_gp * 1e6, t_q * 1e6, t_dq * 1e6);
  }
}
