// Batch normalisation over (N, H, W) for each channel of an NCHW tensor.
// Training: normalise with the batch statistics and update the running ones
// (momentum, unbiased variance, as PyTorch). Evaluation: the running ones.
#pragma once
#include "core/tensor.h"

namespace qforge {

// x (N,C,H,W) or (N,C); weight, bias, running_mean, running_var (C).
// When training, running_mean/var are updated in place:
//   running = (1 - momentum) * running + momentum * batch_stat.
// input_scale (C), optional: normalises x * input_scale[c] without forming it
// (QAT's fused Conv+BN divides the conv output by the BN scale), with its gradient.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum, float eps,
                  const Tensor& input_scale = Tensor());

}  // namespace qforge
