// Quantization numerics, defined once. Fake-quant (training) and the int8
// kernels both call these, so the simulated model and the int8 graph agree
// bit for bit on every quantize step, and differ only where float and integer
// requantization must.
//
//   real value  r = scale * (q - zero_point)        q in [qmin, qmax]
//   quantize    q = clamp(round_to_int(r * inv_scale) + zero_point)   inv_scale = 1.0f / scale, in float
//
// Scheme used by qforge: activations uint8 per-tensor affine (qmin 0, qmax
// 255); weights int8 per output channel, symmetric (zero point 0, range
// [-127, 127]; the kernels accept -128 too); bias int32 at scale
// s_in * s_w[c].
//
// Integer requantization: an int32 accumulator is scaled by a real multiplier
// M = s_in * s_w[c] / s_out expressed as a fixed-point number:
// M = multiplier * 2^(shift - 31) with multiplier in [2^30, 2^31).
//   requantize(acc) = clamp(((sat(acc << lshift) * multiplier + 2^(s-1)) >> s) + zero_point, qmin, qmax)
// in 64 bits, with s = 31 + rshift, lshift = max(shift, 0) (a saturating left
// shift, for M >= 1) and rshift = max(-shift, 0): acc * M rounded once, half up.
// (gemmlowp's form rounds twice, a doubling high multiply and then a rounding
// shift; that moved 0.05-0.3% of a layer's outputs by one step against a float
// requantization such as ONNX Runtime's, and the steps compounded through a
// network.)
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

namespace qforge::quant {

struct QParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
  int32_t qmin = 0, qmax = 255;
};

// Follows torch.ao.quantization's observer `_calculate_qparams`, in float32:
// the range is first extended to contain 0 (so real 0 is exactly
// representable: padding and ReLU need it), scale = (max - min) / (qmax - qmin)
// floored at float32 epsilon (so min == max == 0 gives scale 1.19e-7 and
// zero point qmin, as PyTorch), zero_point = qmin - round(min / scale) clamped
// into [qmin, qmax]. Throws on NaN/inf or min > max.
QParams choose_qparams_affine(float min, float max, int qmin = 0, int qmax = 255);

// Symmetric: zero point 0, scale = absmax / ((qmax - qmin) / 2) floored at
// float32 epsilon (PyTorch's symmetric rule). absmax >= 0, finite.
QParams choose_qparams_symmetric(float absmax, int qmin = -127, int qmax = 127);

// The one rounding rule: round half to even, as std::nearbyint in the default
// rounding mode (what PyTorch's quantize and fake-quantize use).
inline int32_t round_to_int(float x) { return static_cast<int32_t>(std::nearbyint(x)); }

// clamp(round_to_int(x * inv_scale) + zp, qmin, qmax). The clamp happens in
// float before the conversion so any x (even +-inf) is defined; NaN maps to
// qmin (as fmax does, and as the SIMD Quantize kernels do). The product
// x * inv_scale is one float multiply with inv_scale = 1.0f / scale computed
// once in float: callers must pass exactly that, never divide by scale.
inline int32_t quantize_val(float x, float inv_scale, int32_t zp, int32_t qmin, int32_t qmax) {
  float r = std::nearbyint(x * inv_scale);
  r = std::fmax(r, static_cast<float>(qmin - zp));
  r = std::fmin(r, static_cast<float>(qmax - zp));
  return static_cast<int32_t>(r) + zp;
}

inline float dequantize_val(int32_t q, float scale, int32_t zp) { return static_cast<float>(q - zp) * scale; }

// Same rule over arrays (scalar; the SIMD kernels live in quant/kernels).
void quantize(uint8_t* out, const float* in, int64_t n, const QParams& qp);
void dequantize(float* out, const uint8_t* in, int64_t n, const QParams& qp);

// real = multiplier * 2^(shift - 31); multiplier in [2^30, 2^31), or 0 for real == 0.
struct FixedPointMultiplier {
  int32_t multiplier = 0;
  int32_t shift = 0;  // > 0: left shift (real >= 1), < 0: right shift
};

// frexp decomposition, as TFLite's QuantizeMultiplier: a mantissa rounding up
// to 2^31 is halved and the shift incremented; reals below 2^-32 become 0.
// Throws for negative, non-finite, or reals >= 2^30 (shift would exceed 30).
FixedPointMultiplier quantize_multiplier(double real);

// x * 2^s saturated to int32, s in [0, 30].
inline int32_t saturating_left_shift(int32_t x, int s) {
  const int64_t v = static_cast<int64_t>(x) * (int64_t{1} << s);
  if (v > std::numeric_limits<int32_t>::max()) return std::numeric_limits<int32_t>::max();
  if (v < std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::min();
  return static_cast<int32_t>(v);
}

// round(x * M), half up: the product in 64 bits, one rounding. The result fits
// in int32: |x| <= 2^31 after the shift, multiplier < 2^31 and s >= 31.
inline int32_t multiply_by_quantized_multiplier(int32_t x, FixedPointMultiplier m) {
  const int lshift = m.shift > 0 ? m.shift : 0;
  const int s = 31 + (m.shift > 0 ? 0 : -m.shift);  // 31..62
  const int64_t p = static_cast<int64_t>(saturating_left_shift(x, lshift)) * m.multiplier;
  return static_cast<int32_t>((p + (int64_t{1} << (s - 1))) >> s);
}

// The scalar reference of every kernel's output stage. acc already holds the
// int32 bias. The zero point is added in 64 bits, so nothing can overflow.
inline int32_t requantize(int32_t acc, FixedPointMultiplier m, int32_t zp, int32_t qmin, int32_t qmax) {
  int64_t v = static_cast<int64_t>(multiply_by_quantized_multiplier(acc, m)) + zp;
  v = v < qmin ? qmin : v;
  v = v > qmax ? qmax : v;
  return static_cast<int32_t>(v);
}

}  // namespace qforge::quant
