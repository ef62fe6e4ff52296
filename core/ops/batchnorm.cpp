#include "core/ops/batchnorm.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/threads.h"

namespace qforge {

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum, float eps, const Tensor& input_scale) {
  QF_CHECK(x.dim() == 4 || x.dim() == 2, "batch_norm: expected input (N,C,H,W) or (N,C), got " + shape_str(x.shape()));
  const int64_t N = x.size(0), C = x.size(1), HW = x.dim() == 4 ? x.size(2) * x.size(3) : 1, M = N * HW;
  for (const Tensor* p : {&weight, &bias, &running_mean, &running_var})
    QF_CHECK(p->numel() == C, "batch_norm: parameter of shape " + shape_str(p->shape()) + " for input " +
                                  shape_str(x.shape()) + " (C=" + std::to_string(C) + ")");
  const bool scaled = input_scale.defined();
  if (scaled)
    QF_CHECK(input_scale.numel() == C, "batch_norm: input scale of shape " + shape_str(input_scale.shape()) +
                                           " for input " + shape_str(x.shape()));
  if (training)
    QF_CHECK(M > 1, "batch_norm: training needs more than one value per channel, input " + shape_str(x.shape()));

  // Statistics are those of x' = x * s[c] (s = input_scale, else 1): mean' = s mean(x), var' = s^2 var(x).
  Tensor mean = Tensor::empty({C}), invstd = Tensor::empty({C});
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* po = out.data();
  parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const float sc = scaled ? input_scale.data()[c] : 1.f;
      float m, v;
      if (training) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) {
          const float* p = px + (n * C + c) * HW;
          float part = 0;
#pragma omp simd reduction(+ : part)
          for (int64_t i = 0; i < HW; ++i) part += p[i];
          s += part;
        }
        const float mx = static_cast<float>(s / M);
        double ss = 0;
        for (int64_t n = 0; n < N; ++n) {
          const float* p = px + (n * C + c) * HW;
          float part = 0;
#pragma omp simd reduction(+ : part)
          for (int64_t i = 0; i < HW; ++i) part += (p[i] - mx) * (p[i] - mx);
          ss += part;
        }
        m = mx * sc;
        v = static_cast<float>(ss / M) * sc * sc;
        float* rm = running_mean.data() + c;
        float* rv = running_var.data() + c;
        *rm = (1 - momentum) * *rm + momentum * m;
        *rv = (1 - momentum) * *rv + momentum * static_cast<float>(ss / (M - 1)) * sc * sc;
      } else {
        m = running_mean.data()[c];
        v = running_var.data()[c];
      }
      float is = 1.f / std::sqrt(v + eps);
      mean.data()[c] = m;
      invstd.data()[c] = is;
      // out = (x s - m) is gamma + beta = x a + b
      float a = sc * is * weight.data()[c], b = bias.data()[c] - m * is * weight.data()[c];
      for (int64_t n = 0; n < N; ++n) {
        const float* p = px + (n * C + c) * HW;
        float* q = po + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) q[i] = p[i] * a + b;
      }
    }
  });

  record_op(
      out, {x, weight, bias, input_scale},
      [training, scaled, N, C, HW, M, x = x.detach(), w = weight.detach(), s = scaled ? input_scale.detach() : Tensor(),
       mean, invstd](TensorImpl& o, const std::vector<TensorImpl*>& in) {
        const float* g = o.grad->data();
        const float* px = x.data();
        bool assign = false;
        float* dx = in[0] ? in[0]->grad_for_write(&assign) : nullptr;
        float* dw = in[1] ? in[1]->grad_data() : nullptr;
        float* db = in[2] ? in[2]->grad_data() : nullptr;
        float* ds = in[3] ? in[3]->grad_data() : nullptr;
        parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
          for (int64_t c = cb; c < ce; ++c) {
            // In terms of x' = x sc: xhat = (x' - m) is.
            const float sc = scaled ? s.data()[c] : 1.f;
            const float m = mean.data()[c], is = invstd.data()[c];
            // dbeta = sum dy, dgamma = sum dy * xhat
            double sdy = 0, sdyx = 0;
            for (int64_t n = 0; n < N; ++n) {
              const float* p = px + (n * C + c) * HW;
              const float* d = g + (n * C + c) * HW;
              float a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
              for (int64_t i = 0; i < HW; ++i) {
                a += d[i];
                b += d[i] * (p[i] * sc - m);
              }
              sdy += a;
              sdyx += b;
            }
            float dbeta = static_cast<float>(sdy), dgamma = static_cast<float>(sdyx) * is;
            if (dw) dw[c] += dgamma;
            if (db) db[c] += dbeta;
            if (!dx && !ds) continue;
            const float gs = w.data()[c] * is;
            // dx' = gs (dy - dbeta/M - xhat dgamma/M) in training, gs dy in eval;
            // dx = dx' sc, ds = sum dx' x.
            const float k1 = training ? dbeta / M : 0.f, k2 = training ? dgamma * is / M : 0.f;
            double dsc = 0;
            for (int64_t n = 0; n < N; ++n) {
              const float* p = px + (n * C + c) * HW;
              const float* d = g + (n * C + c) * HW;
              float* q = dx ? dx + (n * C + c) * HW : nullptr;
              float part = 0;
              // Three copies of one loop, so each vectorises without branches.
              if (!q) {
#pragma omp simd reduction(+ : part)
                for (int64_t i = 0; i < HW; ++i) part += gs * (d[i] - k1 - (p[i] * sc - m) * k2) * p[i];
              } else if (assign) {
#pragma omp simd reduction(+ : part)
                for (int64_t i = 0; i < HW; ++i) {
                  const float dxp = gs * (d[i] - k1 - (p[i] * sc - m) * k2);
                  q[i] = dxp * sc;
                  part += dxp * p[i];
                }
              } else {
#pragma omp simd reduction(+ : part)
                for (int64_t i = 0; i < HW; ++i) {
                  const float dxp = gs * (d[i] - k1 - (p[i] * sc - m) * k2);
                  q[i] += dxp * sc;
                  part += dxp * p[i];
                }
              }
              dsc += part;
            }
            if (ds) ds[c] += static_cast<float>(dsc);
          }
        });
      });
  return out;
}

}  // namespace qforge
