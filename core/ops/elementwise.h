// Elementwise ops and reductions, each with its gradient.
#pragma once
#include "core/tensor.h"

namespace qforge {

Tensor add(const Tensor& a, const Tensor& b);       // same shapes
Tensor add_relu(const Tensor& a, const Tensor& b);  // max(a + b, 0), one pass
Tensor mul(const Tensor& a, const Tensor& b);       // same shapes
Tensor scale(const Tensor& a, float s);
Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor sum(const Tensor& x);   // -> shape (1)
Tensor mean(const Tensor& x);  // -> shape (1)

}  // namespace qforge
