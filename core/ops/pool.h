// Pooling over NCHW: max (with argmax for backward), average (padding counted,
// as PyTorch's default), and global average (adaptive to 1x1).
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace qforge {

struct Pool2dArgs {
  int kernel_h, kernel_w, stride_h, stride_w, pad_h = 0, pad_w = 0;
};

// Sizes of one pooling: input (n,c,h,w), output (n,c,oh,ow).
struct Pool2dShape {
  int64_t n, c, h, w, oh, ow;
  Pool2dArgs a;
};

// The raw pairs; backward adds into dx, the caller zeroes it.
// x (N,C,H,W) -> out (N,C,OH,OW), argmax (N,C,OH,OW) or null: the flat index of
// each maximum within its input plane, all that backward needs.
void max_pool2d_forward(float* out, int32_t* argmax, const float* x, const Pool2dShape& s);
// dx (N,C,H,W) <- dout (N,C,OH,OW), argmax (N,C,OH,OW)
void max_pool2d_backward(float* dx, const float* dout, const int32_t* argmax, const Pool2dShape& s);
// x (N,C,H,W) -> out (N,C,OH,OW)
void avg_pool2d_forward(float* out, const float* x, const Pool2dShape& s);
// dx (N,C,H,W) <- dout (N,C,OH,OW)
void avg_pool2d_backward(float* dx, const float* dout, const Pool2dShape& s);
// x (planes,hw) -> out (planes)
void global_avg_pool2d_forward(float* out, const float* x, int64_t planes, int64_t hw);
// dx (planes,hw) <- dout (planes)
void global_avg_pool2d_backward(float* dx, const float* dout, int64_t planes, int64_t hw);

// The autograd ops.
Tensor max_pool2d(const Tensor& x, Pool2dArgs a);
Tensor avg_pool2d(const Tensor& x, Pool2dArgs a);
Tensor global_avg_pool2d(const Tensor& x);  // (N,C,H,W) -> (N,C,1,1)

}  // namespace qforge
