// Batch normalisation over (N, H, W) for each channel of an NCHW tensor.
// Training: normalise with the batch statistics and update the running ones
// (momentum, unbiased variance, as PyTorch). Evaluation: the running ones.
#pragma once
#include "core/process_group.h"
#include "core/tensor.h"

namespace qforge {

// The raw pair. x viewed as (N,C,HW) (HW = 1 for (N,C)); all vectors (C).
// out (N,C,HW), mean (C), invstd (C) <- x (N,C,HW), weight, bias (C); input_scale (C) or null.
// Training: mean / invstd are the batch statistics of x * input_scale, and
// running_mean / running_var are updated in place; else they are read.
// mean / invstd are what backward needs.
// group (training only; null: this batch alone): the statistics are those of the batches of all its
// ranks together (SyncBatchNorm), summed with two allreduces (the sums, then the squared deviations
// from the global mean), so N ranks compute what one process computes on their union.
void batch_norm_forward(float* out, float* mean, float* invstd, const float* x, const float* weight, const float* bias,
                        float* running_mean, float* running_var, const float* input_scale, bool training,
                        float momentum, float eps, int64_t N, int64_t C, int64_t HW, ProcessGroup* group = nullptr);
// dx (N,C,HW), dweight, dbias, dscale (C), each may be null <- dout (N,C,HW), and what forward read or saved.
// Adds into the gradients (the caller zeroes them), except that with assign_dx
// dx is written, not added to (a fresh, uninitialised buffer needs no zeroing pass).
// group: as forward's; dx then uses the global sums of dy and dy * xhat, while dweight and dbias
// stay this rank's share (the gradient allreduce sums them with the other parameters').
void batch_norm_backward(float* dx, float* dweight, float* dbias, float* dscale, bool assign_dx, const float* dout,
                         const float* x, const float* weight, const float* input_scale, const float* mean,
                         const float* invstd, bool training, int64_t N, int64_t C, int64_t HW,
                         ProcessGroup* group = nullptr);

// The autograd op; backward keeps x, weight, input_scale and the statistics, not the output.
// x (N,C,H,W) or (N,C); weight, bias, running_mean, running_var (C).
// When training, running_mean/var are updated in place:
//   running = (1 - momentum) * running + momentum * batch_stat.
// input_scale (C), optional: normalises x * input_scale[c] without forming it
// (QAT's fused Conv+BN divides the conv output by the BN scale), with its gradient.
// Training in a data-parallel run (process_group() with sync_batch_norm) uses the global batch's
// statistics.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum, float eps,
                  const Tensor& input_scale = Tensor());

}  // namespace qforge
