#include "quant/qparams.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace qforge::quant {
namespace {

constexpr float kEps = std::numeric_limits<float>::epsilon();  // torch.finfo(torch.float32).eps

void check_qrange(int qmin, int qmax, const char* fn) {
  QF_CHECK(qmin < qmax,
           std::string(fn) + ": need qmin < qmax, got [" + std::to_string(qmin) + ", " + std::to_string(qmax) + "]");
}

}  // namespace

QParams choose_qparams_affine(float min, float max, int qmin, int qmax) {
  check_qrange(qmin, qmax, "choose_qparams_affine");
  QF_CHECK(std::isfinite(min) && std::isfinite(max), "choose_qparams_affine: range must be finite, got [" +
                                                         std::to_string(min) + ", " + std::to_string(max) + "]");
  QF_CHECK(min <= max, "choose_qparams_affine: min > max: [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  const float lo = std::min(min, 0.0f), hi = std::max(max, 0.0f);
  // float32 arithmetic throughout, as PyTorch computes on float32 tensors.
  float scale = (hi - lo) / static_cast<float>(qmax - qmin);
  scale = std::max(scale, kEps);
  int32_t zp = qmin - round_to_int(lo / scale);
  zp = std::clamp<int32_t>(zp, qmin, qmax);
  return QParams{scale, zp, qmin, qmax};
}

QParams choose_qparams_symmetric(float absmax, int qmin, int qmax) {
  check_qrange(qmin, qmax, "choose_qparams_symmetric");
  QF_CHECK(std::isfinite(absmax) && absmax >= 0.0f,
           "choose_qparams_symmetric: absmax must be finite and >= 0, got " + std::to_string(absmax));
  QF_CHECK(qmin <= 0 && qmax >= 0, "choose_qparams_symmetric: [qmin, qmax] must contain 0");
  float scale = absmax / (static_cast<float>(qmax - qmin) / 2.0f);
  scale = std::max(scale, kEps);
  return QParams{scale, 0, qmin, qmax};
}

void quantize(uint8_t* out, const float* in, int64_t n, const QParams& qp) {
  const float inv_scale = 1.0f / qp.scale;
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<uint8_t>(quantize_val(in[i], inv_scale, qp.zero_point, qp.qmin, qp.qmax));
}

void dequantize(float* out, const uint8_t* in, int64_t n, const QParams& qp) {
  for (int64_t i = 0; i < n; ++i) out[i] = dequantize_val(in[i], qp.scale, qp.zero_point);
}

FixedPointMultiplier quantize_multiplier(double real) {
  QF_CHECK(std::isfinite(real) && real >= 0.0,
           "quantize_multiplier: real multiplier must be finite and >= 0, got " + std::to_string(real));
  if (real == 0.0) return {0, 0};
  int exponent = 0;
  const double mantissa = std::frexp(real, &exponent);  // real = mantissa * 2^exponent, mantissa in [0.5, 1)
  int64_t q = std::llround(mantissa * static_cast<double>(int64_t{1} << 31));
  if (q == (int64_t{1} << 31)) {
    q /= 2;
    ++exponent;
  }
  if (exponent < -31) return {0, 0};  // below 2^-32: every int32 accumulator rounds to 0 anyway
  QF_CHECK(exponent <= 30, "quantize_multiplier: real multiplier " + std::to_string(real) +
                               " too large (>= 2^30); scales are inconsistent");
  return {static_cast<int32_t>(q), exponent};
}

}  // namespace qforge::quant
