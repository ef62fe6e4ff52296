// The direct convolution (the definition), the shared conv test cases, and the check of a
// convolution path against both, for test_conv2d.cpp, test_winograd.cpp and test_channels_last.cpp.
#pragma once
#include <doctest/doctest.h>

#include <initializer_list>
#include <vector>

#include "core/ops/conv2d.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "op_test_util.h"

namespace qforge::testing {

// Direct convolution, the definition, for checking the im2col path.
inline Tensor naive_conv(const Tensor& x, const Tensor& w, const Tensor& b, ConvGeometry a) {
  Conv2dShape s = conv2d_shape(x.shape(), w.shape(), a);
  Tensor out = Tensor::zeros({s.n, s.oc, s.oh, s.ow});
  int cg = s.c / a.groups, ocg = s.oc / a.groups;
  for (int n = 0; n < s.n; ++n)
    for (int oc = 0; oc < s.oc; ++oc)
      for (int oh = 0; oh < s.oh; ++oh)
        for (int ow = 0; ow < s.ow; ++ow) {
          double acc = b.defined() ? b.data()[oc] : 0;
          int g = oc / ocg;
          for (int c = 0; c < cg; ++c)
            for (int kh = 0; kh < s.kh; ++kh)
              for (int kw = 0; kw < s.kw; ++kw) {
                int ih = oh * a.stride_h - a.pad_h + kh * a.dilation_h,
                    iw = ow * a.stride_w - a.pad_w + kw * a.dilation_w;
                if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
                acc += x.data()[((n * s.c + g * cg + c) * s.h + ih) * s.w + iw] *
                       w.data()[((oc * cg + c) * s.kh + kh) * s.kw + kw];
              }
          out.data()[((n * s.oc + oc) * s.oh + oh) * s.ow + ow] = static_cast<float>(acc);
        }
  return out;
}

struct ConvCase {
  int n, c, h, w, oc, k;
  ConvGeometry a;
  bool bias;
};

inline const ConvCase kConvCases[] = {
    {1, 3, 7, 6, 4, 3, {1, 1, 1, 1, 1, 1, 1}, true},   // padding, batch 1 (direct GEMM path)
    {3, 2, 8, 7, 5, 3, {2, 2, 1, 1, 1, 1, 1}, false},  // stride 2, batched chunk
    {2, 4, 9, 9, 6, 3, {1, 2, 2, 1, 2, 1, 2}, true},   // dilation, groups 2, asymmetric stride
    {2, 4, 6, 6, 4, 3, {1, 1, 1, 1, 1, 1, 4}, true},   // depthwise
    // Depthwise planes past forward_blocked's sizes (depthwise_planes.h): stride 1 "same", and
    // stride 2 with two output channels per input channel.
    {2, 3, 12, 12, 3, 3, {1, 1, 1, 1, 1, 1, 3}, true},
    {1, 3, 31, 30, 6, 3, {2, 2, 1, 1, 1, 1, 3}, false},
    {2, 3, 5, 5, 8, 1, {2, 2, 0, 0, 1, 1, 1}, false},  // 1x1 stride 2 (ResNet downsample)
    // Stride 1 with output width == input width takes the shifted-plane path:
    {2, 3, 6, 5, 4, 5, {1, 1, 2, 2, 1, 1, 1}, false},   // 5x5 "same"
    {2, 2, 7, 7, 3, 3, {1, 1, 2, 2, 2, 2, 1}, true},    // dilated "same"
    {3, 2, 5, 6, 3, 3, {1, 1, 0, 1, 1, 1, 1}, false},   // no vertical padding: fewer rows out than in
    {1, 2, 2, 2, 3, 5, {1, 1, 2, 2, 1, 1, 1}, true},    // kernel wider than the input: taps all in padding
    {2, 9, 16, 16, 3, 3, {1, 1, 1, 1, 1, 1, 1}, true},  // 32 tiles of 4x4: Winograd (9 channels: not direct)
    // Past 8 channels, where conv2d's kAuto leaves im2col (conv2d_direct_taps): padding, stride 2.
    {2, 9, 7, 6, 4, 3, {1, 1, 1, 1, 1, 1, 1}, true},
    {3, 10, 8, 7, 5, 3, {2, 2, 1, 1, 1, 1, 1}, false},
    // 1x1 at stride 1 (pointwise): one GEMM per image straight on it, a product per thread or, for
    // fewer products than threads, each split over the threads.
    {3, 4, 16, 17, 5, 1, {1, 1, 0, 0, 1, 1, 1}, true},
    {2, 4, 16, 16, 6, 1, {1, 1, 0, 0, 1, 1, 2}, true},  // groups 2
    {3, 4, 5, 6, 5, 1, {1, 1, 0, 0, 1, 1, 1}, false},   // 30 positions
    {1, 4, 16, 16, 5, 1, {1, 1, 0, 0, 1, 1, 1}, true},  // one image: its GEMM over the threads, then the bias
};

// Checks a convolution path, for each chunk size (0: all images), against the definition
// (forward) and im2col's gradients added onto a nonzero start, as the op adds them (backward), and
// each gradient computed alone against both together. forward(out, x, w, s, chunk) and
// backward(dx, dw, dy, x, w, s, chunk), with dx or dw null to skip it.
template <typename Forward, typename Backward>
void check_conv_path(const Tensor& x, const Tensor& wt, ConvGeometry a, std::initializer_list<int> chunks,
                     Forward&& forward, Backward&& backward) {
  const Conv2dShape s = conv2d_shape(x.shape(), wt.shape(), a);
  const Tensor want = naive_conv(x, wt, Tensor(), a);
  const Tensor dy = Tensor::randn(want.shape(), rng());
  Tensor dx0 = Tensor::randn(x.shape(), rng()), dw0 = Tensor::randn(wt.shape(), rng());
  Tensor dx_ref = dx0.clone(), dw_ref = dw0.clone();
  conv2d_backward(dx_ref.data(), dw_ref.data(), nullptr, dy.data(), x.data(), wt.data(), s, ConvAlgo::kIm2col);
  for (int chunk : chunks) {
    CAPTURE(chunk);
    Tensor got = Tensor::empty(want.shape());
    forward(got.data(), x.data(), wt.data(), s, chunk);
    for (int64_t i = 0; i < got.numel(); ++i)
      REQUIRE(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4).scale(1));
    Tensor dx = dx0.clone(), dw = dw0.clone();
    backward(dx.data(), dw.data(), dy.data(), x.data(), wt.data(), s, chunk);
    for (int64_t i = 0; i < dx.numel(); ++i)
      REQUIRE(dx.data()[i] == doctest::Approx(dx_ref.data()[i]).epsilon(1e-4).scale(1));
    for (int64_t i = 0; i < dw.numel(); ++i)
      REQUIRE(dw.data()[i] == doctest::Approx(dw_ref.data()[i]).epsilon(1e-4).scale(1));
    Tensor dw_only = dw0.clone(), dx_only = dx0.clone();  // each gradient alone
    backward(nullptr, dw_only.data(), dy.data(), x.data(), wt.data(), s, chunk);
    backward(dx_only.data(), nullptr, dy.data(), x.data(), wt.data(), s, chunk);
    for (int64_t i = 0; i < dw.numel(); ++i) REQUIRE(dw_only.data()[i] == dw.data()[i]);
    for (int64_t i = 0; i < dx.numel(); ++i) REQUIRE(dx_only.data()[i] == dx.data()[i]);
  }
}

// forward and backward (as check_conv_path takes them) at 1, 2 and 3 threads, for each chunk size:
// the output and dX the same bits (each chunk's are its own, however the threads share the chunks), dW
// the same bits run after run at 2 threads (the parts' sums added in order) and within rounding of
// 1 thread's.
template <typename Forward, typename Backward>
void check_thread_bits(const Tensor& x, const Tensor& wt, ConvGeometry a, std::initializer_list<int> chunks,
                       Forward&& forward, Backward&& backward) {
  const Conv2dShape s = conv2d_shape(x.shape(), wt.shape(), a);
  const Tensor dy = Tensor::randn({s.n, s.oc, s.oh, s.ow}, rng());
  struct Result {
    std::vector<float> y, dx, dw;
  };
  auto run = [&](int threads, int chunk) {
    set_num_threads(threads);
    Tensor y = Tensor::empty(dy.shape()), dx = Tensor::zeros(x.shape()), dw = Tensor::zeros(wt.shape());
    forward(y.data(), x.data(), wt.data(), s, chunk);
    backward(dx.data(), dw.data(), dy.data(), x.data(), wt.data(), s, chunk);
    auto v = [](const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); };
    return Result{v(y), v(dx), v(dw)};
  };
  struct OneThreadAfter {  // also when a check below stops the test
    ~OneThreadAfter() { set_num_threads(1); }
  } one_thread_after;
  for (int chunk : chunks) {
    CAPTURE(chunk);
    const Result one = run(1, chunk), two = run(2, chunk), again = run(2, chunk), three = run(3, chunk);
    CHECK(two.y == one.y);
    CHECK(two.dx == one.dx);
    CHECK(three.y == one.y);  // three parts or bands, unevenly split
    CHECK(three.dx == one.dx);
    CHECK(again.dw == two.dw);
    for (size_t i = 0; i < one.dw.size(); ++i) REQUIRE(two.dw[i] == doctest::Approx(one.dw[i]).epsilon(1e-4));
  }
}

}  // namespace qforge::testing
