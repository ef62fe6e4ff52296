// Convolution benchmarks, not tests: skipped by default. Run with
//   test_core -tc="bench*" --no-skip
// Times forward and backward of each ResNet18 3x3 stride-1 layer shape with
// Winograd and with im2col, on the pool's threads.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

#include "core/ops/conv2d.h"
#include "core/threads.h"

using namespace qforge;

namespace {

// The times of runs calls of f (after one untimed), fastest first.
std::vector<double> times_ms(const std::function<void()>& f, int runs) {
  std::vector<double> t;
  f();
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t;
}

double median_ms(const std::function<void()>& f, int runs) {
  const std::vector<double> t = times_ms(f, runs);
  return t[t.size() / 2];
}

void bench(const char* title, int n, const int (*layers)[2], int count, bool backward) {
  std::printf("%s\n%-14s %10s %10s %8s\n", title, "layer", "im2col ms", "wino ms", "ratio");
  std::mt19937_64 rng(0);
  for (int i = 0; i < count; ++i) {
    const int hw = layers[i][0], c = layers[i][1];
    Tensor x = Tensor::randn({n, c, hw, hw}, rng), w = Tensor::randn({c, c, 3, 3}, rng);
    Tensor out = Tensor::empty({n, c, hw, hw}), dx = Tensor::zeros(x.shape()), dw = Tensor::zeros(w.shape());
    Conv2dShape s = conv2d_shape(x.shape(), w.shape(), {1, 1, 1, 1, 1, 1, 1});
    double t[2];
    for (ConvAlgo a : {ConvAlgo::kIm2col, ConvAlgo::kAuto})
      t[a == ConvAlgo::kAuto] = median_ms(
          [&] {
            if (backward)
              conv2d_backward(dx.data(), dw.data(), nullptr, out.data(), x.data(), w.data(), s, a);
            else
              conv2d_forward(out.data(), x.data(), w.data(), nullptr, s, a);
          },
          backward ? 5 : 15);
    char name[32];
    std::snprintf(name, sizeof name, "%dx%d c%d", hw, hw, c);
    std::printf("%-14s %10.3f %10.3f %7.2fx\n", name, t[0], t[1], t[0] / t[1]);
  }
}

}  // namespace

TEST_CASE("bench conv2d: Winograd against im2col on ResNet18's 3x3 stride-1 layers" * doctest::skip()) {
  set_num_threads(2);
  const int imagenet[][2] = {{56, 64}, {28, 128}, {14, 256}, {7, 512}};
  const int fashion[][2] = {{28, 64}, {14, 128}, {7, 256}, {4, 512}};
  bench("224x224 batch 1, forward", 1, imagenet, 4, false);
  bench("28x28 batch 128, forward", 128, fashion, 4, false);
  bench("28x28 batch 128, backward (dX and dW)", 128, fashion, 4, true);
}

TEST_CASE("bench conv2d: Winograd backward, dX and dW apart, 28x28 batch 128" * doctest::skip()) {
  const char* th = std::getenv("BENCH_THREADS");
  set_num_threads(th ? std::atoi(th) : 2);
  const int fashion[][2] = {{28, 64}, {14, 128}, {7, 256}, {4, 512}};
  std::printf("%-14s %10s %10s %14s\n", "layer", "dX ms", "dW ms", "dW GFLOP/s");
  std::mt19937_64 rng(0);
  const int n = 128;
  for (const auto& l : fashion) {
    const int hw = l[0], c = l[1];
    Tensor x = Tensor::randn({n, c, hw, hw}, rng), w = Tensor::randn({c, c, 3, 3}, rng);
    Tensor dy = Tensor::randn({n, c, hw, hw}, rng), dx = Tensor::zeros(x.shape()), dw = Tensor::zeros(w.shape());
    Conv2dShape s = conv2d_shape(x.shape(), w.shape(), {1, 1, 1, 1, 1, 1, 1});
    const char* mn = std::getenv("BENCH_MIN");  // the fastest of the runs instead of the median
    auto time = [&](const std::function<void()>& f) { return mn ? times_ms(f, std::atoi(mn)).front() : median_ms(f, 7); };
    const double tdx = time([&] { conv2d_backward(dx.data(), nullptr, nullptr, dy.data(), x.data(), w.data(), s, ConvAlgo::kAuto); });
    const double tdw = time([&] { conv2d_backward(nullptr, dw.data(), nullptr, dy.data(), x.data(), w.data(), s, ConvAlgo::kAuto); });
    const double tiles = static_cast<double>(n) * ((hw + 3) / 4) * ((hw + 3) / 4);
    std::printf("%dx%d c%-8d %10.3f %10.3f %14.1f\n", hw, hw, c, tdx, tdw, 2.0 * 36 * c * c * tiles / (tdw * 1e6));
  }
}

TEST_CASE("bench conv2d: ResNet18's stride-2 layers, forward, dX and dW apart, 28x28 batch 128" * doctest::skip()) {
  const char* th = std::getenv("BENCH_THREADS");
  set_num_threads(th ? std::atoi(th) : 2);
  // hw of the input, c, oc, kernel: the 3x3 stride-2 convolutions and the 1x1 downsamples.
  const int layers[][4] = {{28, 64, 128, 3}, {14, 128, 256, 3}, {7, 256, 512, 3},
                           {28, 64, 128, 1}, {14, 128, 256, 1}, {7, 256, 512, 1}};
  std::printf("%-18s %10s %10s %10s %12s\n", "layer", "fwd ms", "dX ms", "dW ms", "fwd GFLOP/s");
  std::mt19937_64 rng(0);
  const int n = 128;
  for (const auto& l : layers) {
    const int hw = l[0], c = l[1], oc = l[2], k = l[3], pad = k / 2;
    Tensor x = Tensor::randn({n, c, hw, hw}, rng), w = Tensor::randn({oc, c, k, k}, rng);
    Conv2dShape s = conv2d_shape(x.shape(), w.shape(), {2, 2, pad, pad, 1, 1, 1});
    Tensor out = Tensor::empty({n, oc, s.oh, s.ow}), dy = Tensor::randn(out.shape(), rng);
    Tensor dx = Tensor::zeros(x.shape()), dw = Tensor::zeros(w.shape());
    const char* mn = std::getenv("BENCH_MIN");
    auto time = [&](const std::function<void()>& f) { return mn ? times_ms(f, std::atoi(mn)).front() : median_ms(f, 7); };
    const double tf = time([&] { conv2d_forward(out.data(), x.data(), w.data(), nullptr, s, ConvAlgo::kAuto); });
    const double tdx = time([&] { conv2d_backward(dx.data(), nullptr, nullptr, dy.data(), x.data(), w.data(), s, ConvAlgo::kAuto); });
    const double tdw = time([&] { conv2d_backward(nullptr, dw.data(), nullptr, dy.data(), x.data(), w.data(), s, ConvAlgo::kAuto); });
    char name[40];
    std::snprintf(name, sizeof name, "%dx%d %d->%d k%d", hw, hw, c, oc, k);
    std::printf("%-18s %10.3f %10.3f %10.3f %12.1f\n", name, tf, tdx, tdw,
                2.0 * n * oc * c * k * k * s.oh * s.ow / (tf * 1e6));
  }
}
