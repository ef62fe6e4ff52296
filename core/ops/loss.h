// log_softmax over the last dimension, and cross-entropy on logits.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace qforge {

Tensor log_softmax(const Tensor& x);  // x (N,K)

// Mean over the batch of -sum_k q_k log softmax(x)_k, where q is the one-hot
// label smoothed as (1 - s) * onehot + s / K. logits (N,K), labels in [0,K).
Tensor cross_entropy(const Tensor& logits, const std::vector<int32_t>& labels, float label_smoothing = 0.f);

}  // namespace qforge
