// The one output-size formula (core/conv_geometry.h), its checks, and the ops that use it.
#include <doctest/doctest.h>

#include "core/conv_geometry.h"
#include "core/error.h"
#include "core/ops/conv2d.h"

using namespace qforge;

namespace {

// The definition: count the window positions whose taps all lie in the padded input.
int windows_that_fit(int in, int k, int stride, int pad, int dil) {
  int n = 0;
  for (int start = -pad; start + dil * (k - 1) <= in - 1 + pad; start += stride) ++n;
  return n;
}

}  // namespace

TEST_CASE("ConvGeometry::out_size: the window positions that fit, over strides, paddings and dilations") {
  for (int in = 1; in <= 12; ++in)
    for (int k = 1; k <= 5; ++k)
      for (int stride = 1; stride <= 4; ++stride)
        for (int pad = 0; pad <= 3; ++pad)
          for (int dil = 1; dil <= 3; ++dil) {
            CAPTURE(in);
            CAPTURE(k);
            CAPTURE(stride);
            CAPTURE(pad);
            CAPTURE(dil);
            CHECK(ConvGeometry::out_size(in, k, stride, pad, dil) == windows_that_fit(in, k, stride, pad, dil));
          }
  // Familiar cases: "same" 3x3, the 7x7 stride-2 stem, a 1x1 stride-2 shortcut, a dilated 3x3.
  static_assert(ConvGeometry::out_size(56, 3, 1, 1, 1) == 56);
  static_assert(ConvGeometry::out_size(224, 7, 2, 3, 1) == 112);
  static_assert(ConvGeometry::out_size(7, 1, 2, 0, 1) == 4);
  static_assert(ConvGeometry::out_size(9, 3, 1, 0, 2) == 5);  // effective kernel 5
  static_assert(ConvGeometry::out_size(9, 3, 1, 2, 2) == 9);  // padding dilation: "same"
  static_assert(ConvGeometry::out_size(4, 3, 1, 0, 2) == 0);  // effective kernel 5 > 4
  // Where the bare formula's truncating division gives 1 although no window fits: 0 here.
  static_assert(ConvGeometry::out_size(1, 3, 3, 0, 1) == 0);
  static_assert(ConvGeometry::out_size(2, 5, 2, 0, 1) == 0);
  // Per axis.
  constexpr ConvGeometry g{2, 1, 1, 0, 1, 2, 1};
  static_assert(g.out_h(8, 3) == 4 && g.out_w(8, 3) == 4);
  static_assert(!g.is_square() && ConvGeometry::square(2, 1).is_square());
}

TEST_CASE("conv_output_size: checked, errors name the op, both shapes and the geometry") {
  auto o = conv_output_size("conv2d", {2, 4, 9, 7}, {8, 2, 3, 1}, ConvGeometry{2, 1, 1, 0, 1, 1, 2});
  CHECK(o.oh == 5);
  CHECK(o.ow == 7);
  // No window fits: the input and the weight are named, and the geometry.
  CHECK_THROWS_WITH_AS(conv_output_size("conv2d", {1, 3, 4, 4}, {8, 3, 3, 3}, ConvGeometry::square(1, 0, 2)),
                       "conv2d: input (1,3,4,4) and weight (8,3,3,3): the input is smaller than the kernel with "
                       "stride 1x1, padding 0x0, dilation 2x2, groups 1 (no window fits)",
                       Error);
  // The truncating-division case: an error, not a 1x1 output read from outside the input.
  CHECK_THROWS_AS(conv_output_size("conv2d", {1, 1, 1, 1}, {1, 1, 3, 3}, ConvGeometry::square(3, 0)), Error);
  // Channels that do not match the groups.
  CHECK_THROWS_WITH_AS(conv_output_size("conv2d", {1, 4, 8, 8}, {8, 4, 3, 3}, ConvGeometry::square(1, 1, 1, 2)),
                       doctest::Contains("input (1,4,8,8) and weight (8,4,3,3) do not match with groups=2"), Error);
  // Invalid geometry.
  for (ConvGeometry bad : {ConvGeometry{0, 1, 0, 0, 1, 1, 1}, ConvGeometry{1, 1, -1, 0, 1, 1, 1},
                           ConvGeometry{1, 1, 0, 0, 1, 0, 1}, ConvGeometry{1, 1, 0, 0, 1, 1, 0}})
    CHECK_THROWS_WITH_AS(conv_output_size("conv2d", {1, 1, 8, 8}, {1, 1, 3, 3}, bad),
                         doctest::Contains("input (1,1,8,8) and weight (1,1,3,3): strides, dilations"), Error);
  CHECK_THROWS_WITH_AS(conv_output_size("conv2d", {1, 1, 8}, {1, 1, 3, 3}, ConvGeometry{}),
                       doctest::Contains("got (1,1,8) and (1,1,3,3)"), Error);
}

TEST_CASE("conv2d_shape and the int8 conv use the one formula") {
  Conv2dShape s = conv2d_shape({2, 3, 11, 9}, {5, 3, 3, 3}, ConvGeometry{2, 1, 1, 2, 1, 2, 1});
  CHECK(s.oh == ConvGeometry::out_size(11, 3, 2, 1, 1));
  CHECK(s.ow == ConvGeometry::out_size(9, 3, 1, 2, 2));
  CHECK_THROWS_WITH_AS(conv2d_shape({1, 1, 1, 1}, {1, 1, 3, 3}, ConvGeometry::square(3, 0)),
                       doctest::Contains("input (1,1,1,1) and weight (1,1,3,3)"), Error);
}
