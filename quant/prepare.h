// prepare and prepare_qat insert the quantization simulation exactly where the
// int8 graph will requantize: the model input (the "quant" child), the output
// of every fused conv / linear, of every residual Add and of the global
// average pool. Weights get per-channel fake-quant. Max pooling keeps its
// input's parameters and needs nothing. Modules the qconfig skips stay float.
//
//   PTQ:  model->eval(); fuse_modules(*model, false, {3, 32, 32}); prepare(*model, qc);
//         calibrate(*model, next_batch, 16);   // observers watch, nothing else changes
//         // now fake-quant is on and observers are off: the simulated int8 model
//   QAT:  model->train(); fuse_modules(*model, true, {3, 32, 32}); prepare_qat(*model, qc); ... train ...
#pragma once
#include <functional>

#include "nn/module.h"
#include "quant/qconfig.h"

namespace qforge::quant {

// For PTQ: the model must be in eval mode. Observers on, fake-quant off.
void prepare(nn::Module& root, const QConfigMapping& qc);
// For QAT: the model must be in training mode. Observers and fake-quant on.
void prepare_qat(nn::Module& root, const QConfigMapping& qc);

// Runs `batches` batches (next_batch fills x, returns false when out of data)
// with only the observers in training mode, then switches to the simulated
// int8 model: observers off, fake-quant on. Returns the batches run.
int calibrate(nn::Module& root, const std::function<bool(Tensor&)>& next_batch, int batches);

void set_observers(nn::Module& root, bool on);   // every FakeQuantize's observer switch
void set_fake_quant(nn::Module& root, bool on);  // every FakeQuantize's fake-quant switch
void freeze_bn(nn::Module& root);                // every ConvBnAct: BN uses running statistics

// Counts of what prepare inserted, for messages and tests.
struct PrepareStats {
  int activation_points = 0, weight_points = 0, skipped = 0;
};
PrepareStats prepare_stats(const nn::Module& root);

}  // namespace qforge::quant
