#include "core/conv_geometry.h"

#include "core/error.h"
#include "core/tensor.h"

namespace qforge {

std::string ConvGeometry::str() const {
  auto hw = [](int h, int w) { return std::to_string(h) + "x" + std::to_string(w); };
  return "stride " + hw(stride_h, stride_w) + ", padding " + hw(pad_h, pad_w) + ", dilation " +
         hw(dilation_h, dilation_w) + ", groups " + std::to_string(groups);
}

void ConvGeometry::check(const std::string& what) const {
  QF_CHECK(
      stride_h >= 1 && stride_w >= 1 && dilation_h >= 1 && dilation_w >= 1 && pad_h >= 0 && pad_w >= 0 && groups >= 1,
      what + ": strides, dilations and groups must be >= 1 and paddings >= 0, got " + str());
}

ConvOutputSize conv_output_size(const std::string& op, const Shape& inp, const Shape& weight, const ConvGeometry& g) {
  const std::string shapes = "input " + shape_str(inp) + " and weight " + shape_str(weight);
  QF_CHECK(inp.size() == 4 && weight.size() == 4,
           op + ": expected input (N,C,H,W) and weight (OC,C/groups,KH,KW), got " + shape_str(inp) + " and " +
               shape_str(weight));
  g.check(op + ": " + shapes);
  const int64_t c = inp[1], oc = weight[0];
  QF_CHECK(c % g.groups == 0 && oc % g.groups == 0 && weight[1] == c / g.groups,
           op + ": " + shapes + " do not match with groups=" + std::to_string(g.groups));
  QF_CHECK(weight[2] > 0 && weight[3] > 0, op + ": empty kernel in " + shapes);
  const ConvOutputSize o{g.out_h(static_cast<int>(inp[2]), static_cast<int>(weight[2])),
                         g.out_w(static_cast<int>(inp[3]), static_cast<int>(weight[3]))};
  QF_CHECK(o.oh > 0 && o.ow > 0,
           op + ": " + shapes + ": the input is smaller than the kernel with " + g.str() + " (no window fits)");
  return o;
}

}  // namespace qforge
