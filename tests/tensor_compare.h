// Comparing tensors in tests.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/tensor.h"

namespace qforge::testing {

// The largest |a - b| over the elements (the shapes must agree), in double.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(a.data()[i]) - b.data()[i]));
  return m;
}

}  // namespace qforge::testing
