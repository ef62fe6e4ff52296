// log_softmax over the last dimension, and cross-entropy on logits.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace qforge {

// The raw pairs; backward adds into its gradient, the caller zeroes it.
// x (N,K) -> out (N,K) = x - logsumexp over each row
void log_softmax_forward(float* out, const float* x, int64_t n, int64_t k);
// dx (N,K) <- dout (N,K), out (N,K) (reads the output, not x)
void log_softmax_backward(float* dx, const float* dout, const float* out, int64_t n, int64_t k);
// logits (N,K), labels (N) -> the loss; logp (N,K) = log softmax(logits), all backward needs.
float cross_entropy_forward(float* logp, const float* logits, const int32_t* labels, float label_smoothing, int64_t n,
                            int64_t k);
// dlogits (N,K) <- dout (the loss's gradient), logp (N,K), labels (N)
void cross_entropy_backward(float* dlogits, float dout, const float* logp, const int32_t* labels, float label_smoothing,
                            int64_t n, int64_t k);

// The autograd ops.
Tensor log_softmax(const Tensor& x);  // x (N,K)

// Mean over the batch of -sum_k q_k log softmax(x)_k, where q is the one-hot
// label smoothed as (1 - s) * onehot + s / K. logits (N,K), labels in [0,K).
Tensor cross_entropy(const Tensor& logits, const std::vector<int32_t>& labels, float label_smoothing = 0.f);

}  // namespace qforge
