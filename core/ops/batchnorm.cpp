#include "core/ops/batchnorm.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/threads.h"

namespace qforge {

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum, float eps) {
  QF_CHECK(x.dim() == 4 || x.dim() == 2, "batch_norm: expected input (N,C,H,W) or (N,C), got " + shape_str(x.shape()));
  const int64_t N = x.size(0), C = x.size(1), HW = x.dim() == 4 ? x.size(2) * x.size(3) : 1, M = N * HW;
  for (const Tensor* p : {&weight, &bias, &running_mean, &running_var})
    QF_CHECK(p->numel() == C, "batch_norm: parameter of shape " + shape_str(p->shape()) + " for input " +
                                  shape_str(x.shape()) + " (C=" + std::to_string(C) + ")");
  if (training)
    QF_CHECK(M > 1, "batch_norm: training needs more than one value per channel, input " + shape_str(x.shape()));

  Tensor mean = Tensor::empty({C}), invstd = Tensor::empty({C});
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* po = out.data();
  parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      float m, v;
      if (training) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) {
          const float* p = px + (n * C + c) * HW;
          float part = 0;
          for (int64_t i = 0; i < HW; ++i) part += p[i];
          s += part;
        }
        m = static_cast<float>(s / M);
        double ss = 0;
        for (int64_t n = 0; n < N; ++n) {
          const float* p = px + (n * C + c) * HW;
          float part = 0;
          for (int64_t i = 0; i < HW; ++i) part += (p[i] - m) * (p[i] - m);
          ss += part;
        }
        v = static_cast<float>(ss / M);
        float* rm = running_mean.data() + c;
        float* rv = running_var.data() + c;
        *rm = (1 - momentum) * *rm + momentum * m;
        *rv = (1 - momentum) * *rv + momentum * static_cast<float>(ss / (M - 1));
      } else {
        m = running_mean.data()[c];
        v = running_var.data()[c];
      }
      float is = 1.f / std::sqrt(v + eps);
      mean.data()[c] = m;
      invstd.data()[c] = is;
      float a = is * weight.data()[c], b = bias.data()[c] - m * a;
      for (int64_t n = 0; n < N; ++n) {
        const float* p = px + (n * C + c) * HW;
        float* q = po + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) q[i] = p[i] * a + b;
      }
    }
  });

  record_op(out, {x, weight, bias},
            [training, N, C, HW, M, x = x.detach(), w = weight.detach(), mean, invstd](
                TensorImpl& o, const std::vector<TensorImpl*>& in) {
              const float* g = o.grad->data();
              const float* px = x.data();
              bool assign = false;
              float* dx = in[0] ? in[0]->grad_for_write(&assign) : nullptr;
              float* dw = in[1] ? in[1]->grad_data() : nullptr;
              float* db = in[2] ? in[2]->grad_data() : nullptr;
              parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
                for (int64_t c = cb; c < ce; ++c) {
                  const float m = mean.data()[c], is = invstd.data()[c];
                  // dbeta = sum dy, dgamma = sum dy * xhat, xhat = (x - m) * is
                  double sdy = 0, sdyx = 0;
                  for (int64_t n = 0; n < N; ++n) {
                    const float* p = px + (n * C + c) * HW;
                    const float* d = g + (n * C + c) * HW;
                    float a = 0, b = 0;
                    for (int64_t i = 0; i < HW; ++i) {
                      a += d[i];
                      b += d[i] * (p[i] - m);
                    }
                    sdy += a;
                    sdyx += b;
                  }
                  float dbeta = static_cast<float>(sdy), dgamma = static_cast<float>(sdyx) * is;
                  if (dw) dw[c] += dgamma;
                  if (db) db[c] += dbeta;
                  if (!dx) continue;
                  const float gs = w.data()[c] * is;
                  if (training) {
                    // dx = gamma * is / M * (M dy - dbeta - xhat dgamma)
                    const float k1 = dbeta / M, k2 = dgamma * is / M;
                    for (int64_t n = 0; n < N; ++n) {
                      const float* p = px + (n * C + c) * HW;
                      const float* d = g + (n * C + c) * HW;
                      float* q = dx + (n * C + c) * HW;
                      if (assign) {
                        for (int64_t i = 0; i < HW; ++i) q[i] = gs * (d[i] - k1 - (p[i] - m) * k2);
                      } else {
                        for (int64_t i = 0; i < HW; ++i) q[i] += gs * (d[i] - k1 - (p[i] - m) * k2);
                      }
                    }
                  } else {
                    for (int64_t n = 0; n < N; ++n) {
                      const float* d = g + (n * C + c) * HW;
                      float* q = dx + (n * C + c) * HW;
                      for (int64_t i = 0; i < HW; ++i) q[i] = (assign ? 0.f : q[i]) + gs * d[i];
                    }
                  }
                }
              });
            });
  return out;
}

}  // namespace qforge
