// Observers: modules that watch the values flowing through them and choose
// quantization parameters from what they saw (torch.ao.quantization's
// observers). forward(x) records x when the observer is in training mode and
// returns x unchanged: evaluation never changes a model. PTQ calibration puts
// the observers (only) in training mode; see quant/prepare.h.
//
//   auto obs = make_observer({.kind = "histogram"}, activation_scheme());
//   obs->train(); (*obs)(x1); (*obs)(x2);
//   QParams qp = obs->calculate_qparams()[0];
//
// State lives in buffers, so a prepared model's checkpoint keeps it:
// min_val / max_val (shape (1) or (C)), and for histogram-based observers the
// histogram over [min_val, max_val].
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "quant/qparams.h"

namespace qforge::quant {

// The integer grid and granularity of one quantized tensor.
struct QScheme {
  int qmin = 0, qmax = 255;
  bool symmetric = false;  // zero point 0 (weights)
  bool per_channel = false;
  int axis = 0;      // the channel axis when per_channel (0 for conv/linear weights)
  int channels = 1;  // number of channels when per_channel
};

QScheme activation_scheme();              // uint8 [0,255], affine, per tensor
QScheme weight_scheme(int out_channels);  // int8 [-127,127], symmetric, per output channel
QScheme weight_scheme_per_tensor();       // int8 [-127,127], symmetric, per tensor

struct ObserverSpec {
  // minmax | moving_average_minmax | histogram | percentile
  // (per_channel schemes support minmax and moving_average_minmax)
  std::string kind = "minmax";
  float averaging_constant = 0.01f;  // moving average: min = min + c * (batch_min - min)
  int bins = 2048;                   // histogram / percentile
  float percentile = 99.99f;         // percentile: range [p(100 - pct), p(pct)] of the values seen
};

class Observer : public nn::Module {
 public:
  explicit Observer(QScheme s) : scheme_(s) {}
  Tensor forward(const Tensor& x) override;  // observe(x) when training(); returns x
  virtual void observe(const Tensor& x) = 0;
  virtual bool has_data() const = 0;
  // One entry per channel (per_channel) or a single entry. Before any data:
  // PyTorch's default (scale 1, zero point qmin or 0).
  virtual std::vector<QParams> calculate_qparams() const = 0;
  const QScheme& scheme() const { return scheme_; }

 protected:
  QScheme scheme_;
};

// Throws Error naming the kind for an unknown kind or an unsupported combination.
std::shared_ptr<Observer> make_observer(const ObserverSpec& spec, const QScheme& scheme);

}  // namespace qforge::quant
