// The geometry of a 2-D convolution window, per axis: stride, padding,
// dilation, and the channel groups. One type for the float op
// (core/ops/conv2d.h), the nn::Conv2d options, the int8 converter, graph and
// kernels (quant/), so the output-size formula and its checks live here only.
//
//   ConvGeometry g = ConvGeometry::square(/*stride=*/2, /*padding=*/1);
//   int oh = g.out_h(h, kh);                       // floor mode, 0 if no window fits
//   auto [oh, ow] = conv_output_size("conv2d", inp, weight, g);   // checked, errors name both shapes
//
// Pooling windows use the same formula with dilation 1.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qforge {

struct ConvGeometry {
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;

  static constexpr ConvGeometry square(int stride, int padding, int dilation = 1, int groups = 1) {
    return {stride, stride, padding, padding, dilation, dilation, groups};
  }
  constexpr bool is_square() const { return stride_h == stride_w && pad_h == pad_w && dilation_h == dilation_w; }
  constexpr bool operator==(const ConvGeometry&) const = default;

  // The one output-size formula: window positions along an axis of `in` elements, padded by `pad`
  // on both sides, for a kernel of `kernel` taps `dilation` apart, every `stride` elements (floor
  // mode). 0 when not even one window fits (the plain formula's truncating division would give 1
  // for some such cases, e.g. in 1, kernel 3, stride 3).
  static constexpr int out_size(int in, int kernel, int stride, int pad, int dilation) {
    const int64_t span = int64_t{in} + 2 * int64_t{pad} - int64_t{dilation} * (kernel - 1) - 1;
    return span < 0 ? 0 : static_cast<int>(span / stride + 1);
  }
  constexpr int out_h(int h, int kh) const { return out_size(h, kh, stride_h, pad_h, dilation_h); }
  constexpr int out_w(int w, int kw) const { return out_size(w, kw, stride_w, pad_w, dilation_w); }

  // "stride 2x2, padding 1x1, dilation 1x1, groups 1" (h x w), for error messages.
  std::string str() const;
  // Throws Error("<what>: ...") unless strides, dilations and groups are >= 1 and paddings >= 0.
  void check(const std::string& what) const;
};

struct ConvOutputSize {
  int oh, ow;
};

// For an input (N,C,H,W) and a weight (OC,C/groups,KH,KW): checks the geometry, that the
// channels match with its groups and that at least one window fits, and returns (OH, OW).
// Errors are "<op>: ..." and name both shapes and the geometry.
ConvOutputSize conv_output_size(const std::string& op, const std::vector<int64_t>& inp,
                                const std::vector<int64_t>& weight, const ConvGeometry& g);

}  // namespace qforge
