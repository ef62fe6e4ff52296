// Depthwise convolution benchmarks, not tests: skipped by default. Run with
//   test_core -tc="bench depthwise*" --no-skip
// The first times MobileNetV2's depthwise 3x3 layers (padding 1), forward and
// backward (dX, dW and db), through im2col + sgemm (conv2d's generic grouped
// path, the old route) and through the depthwise kernels, on the pool's
// threads. The second times one plane's kernels on one thread for each
// instruction set (best of 9, in ns per output element), which a busy machine
// disturbs less.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <utility>
#include <vector>

#include "core/cpu.h"
#include "core/kernels/depthwise_planes.h"
#include "core/ops/conv2d.h"
#include "core/threads.h"

using namespace qforge;

namespace {

double median_ms(const std::function<void()>& f, int runs) {
  std::vector<double> t;
  f();
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Layer {
  int hw, c, stride;
};

void bench(const char* title, int n, const std::vector<Layer>& layers, int runs) {
  std::printf("%s\n%-16s %12s %12s %8s %12s %12s %8s\n", title, "layer", "fwd old ms", "fwd new ms", "ratio",
              "bwd old ms", "bwd new ms", "ratio");
  std::mt19937_64 rng(0);
  double total[4] = {};
  for (const Layer& l : layers) {
    Tensor x = Tensor::randn({n, l.c, l.hw, l.hw}, rng), w = Tensor::randn({l.c, 1, 3, 3}, rng);
    Tensor b = Tensor::randn({l.c}, rng);
    const Conv2dShape s = conv2d_shape(x.shape(), w.shape(), {l.stride, l.stride, 1, 1, 1, 1, l.c});
    Tensor out = Tensor::empty({n, l.c, s.oh, s.ow}), dout = Tensor::randn(out.shape(), rng);
    Tensor dx = Tensor::zeros(x.shape()), dw = Tensor::zeros(w.shape()), db = Tensor::zeros(b.shape());
    double t[4];
    for (ConvAlgo a : {ConvAlgo::kIm2col, ConvAlgo::kAuto}) {
      const int i = a == ConvAlgo::kAuto;
      t[i] = median_ms([&] { conv2d_forward(out.data(), x.data(), w.data(), b.data(), s, a); }, runs);
      t[2 + i] = median_ms(
          [&] { conv2d_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), s, a); }, runs);
    }
    for (int i = 0; i < 4; ++i) total[i] += t[i];
    char name[40];
    std::snprintf(name, sizeof name, "%dx%dx%d s%d", l.hw, l.hw, l.c, l.stride);
    std::printf("%-16s %12.3f %12.3f %7.1fx %12.3f %12.3f %7.1fx\n", name, t[0], t[1], t[0] / t[1], t[2], t[3],
                t[2] / t[3]);
  }
  std::printf("%-16s %12.3f %12.3f %7.1fx %12.3f %12.3f %7.1fx\n", "sum of shapes", total[0], total[1],
              total[0] / total[1], total[2], total[3], total[2] / total[3]);
}

}  // namespace

TEST_CASE("bench depthwise: MobileNetV2's depthwise layers, im2col + sgemm against the depthwise kernels" *
          doctest::skip()) {
  set_num_threads(2);
  std::printf("depthwise kernels: %s, %d threads\n", depthwise_detail::depthwise_kernels().name, num_threads());
  // Each distinct depthwise shape of MobileNetV2 at 224x224 (input plane, channels, stride).
  const std::vector<Layer> imagenet = {{112, 32, 1}, {112, 96, 2}, {56, 144, 1}, {56, 144, 2}, {28, 192, 1},
                                       {28, 192, 2}, {14, 384, 1}, {14, 576, 1}, {14, 576, 2}, {7, 960, 1}};
  // The same layers on 28x28 images with the stem and first block at stride 1 (planes 4x smaller).
  const std::vector<Layer> small = {{28, 32, 1}, {28, 96, 2}, {14, 144, 1}, {14, 144, 2}, {7, 192, 1},
                                    {7, 192, 2}, {4, 384, 1}, {4, 576, 1},  {4, 576, 2},  {2, 960, 1}};
  bench("224x224 batch 1", 1, imagenet, 15);
  bench("28x28 batch 128 (training)", 128, small, 3);
}

TEST_CASE("bench depthwise kernels: one 3x3 plane per instruction set, ns per output" * doctest::skip()) {
  using namespace depthwise_detail;
  const std::pair<const DepthwiseKernels*, bool> tables[] = {{&depthwise_planes__ref, true},
                                                             {&depthwise_planes__avx2, isa_supported(Isa::avx2)},
                                                             {&depthwise_planes__avx512, isa_supported(Isa::avx512)}};
  std::printf("%-10s %-10s %8s %8s %8s\n", "isa", "plane", "fwd", "dinp", "dweight");
  std::mt19937_64 rng(0);
  for (const auto& [k, supported] : tables) {
    if (!supported) {
      std::printf("%-10s skipped: not on this CPU\n", k->name);
      continue;
    }
    for (int stride : {1, 2})
      for (int hw : {112, 56, 28, 14, 7}) {
        const int o = (hw - 1) / stride + 1;
        const PlaneGeo g{hw, hw, o, o, 3, 3, stride, stride, 1, 1, 1, 1};
        Tensor in = Tensor::randn({hw, hw}, rng), d = Tensor::randn({o, o}, rng), w = Tensor::randn({9}, rng);
        Tensor out = Tensor::empty({o, o}), din = Tensor::zeros({hw, hw}), sums = Tensor::empty({10});
        std::vector<float> zeros(hw + 16, 0.f), work(work_floats(g));
        const int reps = 200000 / (hw * hw) + 10;
        double ns[3];
        for (int which = 0; which < 3; ++which) {
          ns[which] = 1e30;
          for (int rep = 0; rep < 9; ++rep) {
            const auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < reps; ++i) {
              if (which == 0) k->forward(out.data(), in.data(), w.data(), 0.5f, g, zeros.data(), work.data());
              if (which == 1) k->backward_input(din.data(), d.data(), w.data(), g, zeros.data(), work.data());
              if (which == 2) k->backward_weight(sums.data(), d.data(), in.data(), g, zeros.data(), work.data());
            }
            const double t = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
            ns[which] = std::min(ns[which], t / reps / (o * o));
          }
        }
        char name[40];
        std::snprintf(name, sizeof name, "%dx%d s%d", hw, hw, stride);
        std::printf("%-10s %-10s %8.3f %8.3f %8.3f\n", k->name, name, ns[0], ns[1], ns[2]);
      }
  }
}
