// The direct convolution (the definition) and the shared conv test cases, for
// test_conv2d.cpp and test_winograd.cpp.
#pragma once
#include "core/ops/conv2d.h"
#include "core/tensor.h"

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
    {2, 3, 5, 5, 8, 1, {2, 2, 0, 0, 1, 1, 1}, false},  // 1x1 stride 2 (ResNet downsample)
    // Stride 1 with output width == input width takes the shifted-plane path:
    {2, 3, 6, 5, 4, 5, {1, 1, 2, 2, 1, 1, 1}, false},   // 5x5 "same"
    {2, 2, 7, 7, 3, 3, {1, 1, 2, 2, 2, 2, 1}, true},    // dilated "same"
    {3, 2, 5, 6, 3, 3, {1, 1, 0, 1, 1, 1, 1}, false},   // no vertical padding: fewer rows out than in
    {1, 2, 2, 2, 3, 5, {1, 1, 2, 2, 1, 1, 1}, true},    // kernel wider than the input: taps all in padding
    {2, 2, 16, 16, 3, 3, {1, 1, 1, 1, 1, 1, 1}, true},  // 32 tiles of 4x4: Winograd
    // 1x1 at stride 1 (pointwise): one GEMM per image straight on it, a product per thread or, for
    // fewer products than threads, each split over the threads.
    {3, 4, 16, 17, 5, 1, {1, 1, 0, 0, 1, 1, 1}, true},
    {2, 4, 16, 16, 6, 1, {1, 1, 0, 0, 1, 1, 2}, true},  // groups 2
    {3, 4, 5, 6, 5, 1, {1, 1, 0, 0, 1, 1, 1}, false},   // 30 positions
    {1, 4, 16, 16, 5, 1, {1, 1, 0, 0, 1, 1, 1}, true},  // one image: its GEMM over the threads, then the bias
};

}  // namespace qforge::testing
