// Per-channel ops: scale or shift every channel of a tensor by a vector, for
// the BN folding that QAT's fused Conv+BN simulates.
#pragma once
#include "core/tensor.h"

namespace qforge {

// x (C, ...) with axis 0, or (N, C, ...) with axis 1; s (C). out = x * s[c].
Tensor scale_channels(const Tensor& x, const Tensor& s, int axis);
// out = x + b[c]
Tensor add_channels(const Tensor& x, const Tensor& b, int axis);
// out = 1 / x, elementwise.
Tensor reciprocal(const Tensor& x);

}  // namespace qforge
