// FakeQuantize: simulates quantization in float during training.
//
//   forward: (clamp(round(x * inv_scale) + zp, qmin, qmax) - zp) * scale
//   backward (straight-through estimator): the gradient passes where
//   round(x * inv_scale) + zp lies in [qmin, qmax], and is zero elsewhere.
//
// The rounding is quant::quantize_val, the one the int8 runtime uses. A
// FakeQuantize owns its observer (child "activation_post_process", as in
// PyTorch) and has two switches: observer_enabled (the observer watches x and
// the scale / zero point are recomputed, only in training mode) and
// fake_quant_enabled (else forward returns x). Per tensor or per channel
// (axis 0 for weights, 1 for NCHW activations).
//
// LSQ (learned step size, Esser et al. 2019): with lsq = true the scale is a
// parameter trained by backward (gradient as in the paper, scaled by
// 1 / sqrt(numel * qmax)); the observer only initialises it on the first batch.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "nn/module.h"
#include "quant/observer.h"

namespace qforge::quant {

// The raw pairs. x (n) is seen as (outer, C, inner) with C = qp.size(): the
// channel of element i is (i / inner) % C; with one QParams, per tensor (inner
// ignored). Backward adds into its gradients (the caller zeroes them), except
// that with assign_dx dx is written (a fresh, uninitialised buffer).
// out (n), mask ((n + 63) / 64 words, or null) <- x (n); mask bit i (little-endian
// in each word) = x[i] was not clamped, all the STE backward needs.
void fake_quantize_forward(float* out, uint64_t* mask, const float* x, const std::vector<QParams>& qp, int64_t n,
                           int64_t inner);
// dx (n) <- dout (n) where the mask bit is set, else 0
void fake_quantize_backward(float* dx, bool assign_dx, const float* dout, const uint64_t* mask, int64_t n);
// LSQ: out (n) <- x (n), scale (C); qp gives the zero points and the integer range.
void fake_quantize_lsq_forward(float* out, const float* x, const float* scale, const std::vector<QParams>& qp,
                               int64_t n, int64_t inner);
// dx (n), dscale (C), each may be null <- dout (n), x (n) and scale (C) as forward read them
void fake_quantize_lsq_backward(float* dx, float* dscale, bool assign_dx, const float* dout, const float* x,
                                const float* scale, const std::vector<QParams>& qp, int64_t n, int64_t inner);

// The autograd op. qp: one entry (per tensor, axis ignored) or one per
// channel along `axis`. x must be contiguous NCHW / (OC, ...) as usual.
Tensor fake_quantize(const Tensor& x, const std::vector<QParams>& qp, int axis);

// LSQ variant: the scale is a tensor (1) or (C) that receives a gradient.
// Zero points and the integer range come from qp (their scales are ignored).
Tensor fake_quantize_lsq(const Tensor& x, const Tensor& scale, const std::vector<QParams>& qp, int axis);

class FakeQuantize : public nn::Module {
 public:
  explicit FakeQuantize(std::shared_ptr<Observer> observer, bool lsq = false);
  std::string type() const override { return "FakeQuantize"; }
  Tensor forward(const Tensor& x) override;

  bool observer_enabled = true, fake_quant_enabled = true;
  const std::shared_ptr<Observer>& observer() const { return observer_; }
  // The current parameters (from the last observation, or the learned scale).
  std::vector<QParams> qparams() const;
  int axis() const;  // -1 per tensor
  bool lsq() const { return lsq_; }

  // Buffers "scale" and "zero_point" (float, shape (1) or (C)); with LSQ,
  // "scale" is a parameter instead.
  Tensor scale, zero_point;

 private:
  void update_from_observer();
  std::shared_ptr<Observer> observer_;
  bool lsq_;
  bool initialised_ = false;
};

}  // namespace qforge::quant
