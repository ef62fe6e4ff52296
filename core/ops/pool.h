// Pooling over NCHW: max (with argmax for backward), average (padding counted,
// as PyTorch's default), and global average (adaptive to 1x1).
#pragma once
#include "core/tensor.h"

namespace qforge {

struct Pool2dArgs {
  int kernel_h, kernel_w, stride_h, stride_w, pad_h = 0, pad_w = 0;
};

Tensor max_pool2d(const Tensor& x, Pool2dArgs a);
Tensor avg_pool2d(const Tensor& x, Pool2dArgs a);
Tensor global_avg_pool2d(const Tensor& x);  // (N,C,H,W) -> (N,C,1,1)

}  // namespace qforge
