// Per-channel ops: scale or shift every channel of a tensor by a vector, for
// the BN folding that QAT's fused Conv+BN simulates.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace qforge {

// x viewed as (outer, C, inner) for the channel axis.
struct ChannelView {
  int64_t outer, c, inner;
};

// The raw pairs; backward adds into its gradients (each may be null), the caller zeroes them.
// x (outer,C,inner), s (C) -> out (outer,C,inner) = x * s[c]
void scale_channels_forward(float* out, const float* x, const float* s, const ChannelView& cv);
// dx += dout * s[c]; ds[c] += sum dout * x (x is read only for ds, and may be null without it)
void scale_channels_backward(float* dx, float* ds, const float* dout, const float* x, const float* s,
                             const ChannelView& cv);
// x (outer,C,inner), b (C) -> out = x + b[c]
void add_channels_forward(float* out, const float* x, const float* b, const ChannelView& cv);
// dx += dout; db[c] += sum dout
void add_channels_backward(float* dx, float* db, const float* dout, const ChannelView& cv);
// out (n) = 1 / x
void reciprocal_forward(float* out, const float* x, int64_t n);
// dx -= dout * out^2 (reads the output, not x)
void reciprocal_backward(float* dx, const float* dout, const float* out, int64_t n);

// The autograd ops.

// x (C, ...) with axis 0, or (N, C, ...) with axis 1; s (C). out = x * s[c].
Tensor scale_channels(const Tensor& x, const Tensor& s, int axis);
// out = x + b[c]
Tensor add_channels(const Tensor& x, const Tensor& b, int axis);
// out = 1 / x, elementwise.
Tensor reciprocal(const Tensor& x);

}  // namespace qforge
