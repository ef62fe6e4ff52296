#include "core/ops/batchnorm.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/threads.h"

namespace qforge {

void batch_norm_forward(float* out, float* mean, float* invstd, const float* x, const float* weight, const float* bias,
                        float* running_mean, float* running_var, const float* input_scale, bool training,
                        float momentum, float eps, int64_t N, int64_t C, int64_t HW) {
  const int64_t M = N * HW;
  // Statistics are those of x' = x * s[c] (s = input_scale, else 1): mean' = s mean(x), var' = s^2 var(x).
  parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const float sc = input_scale ? input_scale[c] : 1.f;
      float m, v;
      if (training) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) {
          const float* p = x + (n * C + c) * HW;
          float part = 0;
#pragma omp simd reduction(+ : part)
          for (int64_t i = 0; i < HW; ++i) part += p[i];
          s += part;
        }
        const float mx = static_cast<float>(s / M);
        double ss = 0;
        for (int64_t n = 0; n < N; ++n) {
          const float* p = x + (n * C + c) * HW;
          float part = 0;
#pragma omp simd reduction(+ : part)
          for (int64_t i = 0; i < HW; ++i) part += (p[i] - mx) * (p[i] - mx);
          ss += part;
        }
        m = mx * sc;
        v = static_cast<float>(ss / M) * sc * sc;
        float* rm = running_mean + c;
        float* rv = running_var + c;
        *rm = (1 - momentum) * *rm + momentum * m;
        *rv = (1 - momentum) * *rv + momentum * static_cast<float>(ss / (M - 1)) * sc * sc;
      } else {
        m = running_mean[c];
        v = running_var[c];
      }
      float is = 1.f / std::sqrt(v + eps);
      mean[c] = m;
      invstd[c] = is;
      // out = (x s - m) is gamma + beta = x a + b
      float a = sc * is * weight[c], b = bias[c] - m * is * weight[c];
      for (int64_t n = 0; n < N; ++n) {
        const float* p = x + (n * C + c) * HW;
        float* q = out + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) q[i] = p[i] * a + b;
      }
    }
  });
}

void batch_norm_backward(float* dx, float* dweight, float* dbias, float* dscale, bool assign_dx, const float* dout,
                         const float* x, const float* weight, const float* input_scale, const float* mean,
                         const float* invstd, bool training, int64_t N, int64_t C, int64_t HW) {
  const int64_t M = N * HW;
  parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      // In terms of x' = x sc: xhat = (x' - m) is.
      const float sc = input_scale ? input_scale[c] : 1.f;
      const float m = mean[c], is = invstd[c];
      // dbeta = sum dy, dgamma = sum dy * xhat
      double sdy = 0, sdyx = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float* p = x + (n * C + c) * HW;
        const float* d = dout + (n * C + c) * HW;
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
      if (dweight) dweight[c] += dgamma;
      if (dbias) dbias[c] += dbeta;
      if (!dx && !dscale) continue;
      const float gs = weight[c] * is;
      // dx' = gs (dy - dbeta/M - xhat dgamma/M) in training, gs dy in eval;
      // dx = dx' sc, ds = sum dx' x.
      const float k1 = training ? dbeta / M : 0.f, k2 = training ? dgamma * is / M : 0.f;
      double dsc = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float* p = x + (n * C + c) * HW;
        const float* d = dout + (n * C + c) * HW;
        float* q = dx ? dx + (n * C + c) * HW : nullptr;
        float part = 0;
        // Three copies of one loop, so each vectorises without branches.
        if (!q) {
#pragma omp simd reduction(+ : part)
          for (int64_t i = 0; i < HW; ++i) part += gs * (d[i] - k1 - (p[i] * sc - m) * k2) * p[i];
        } else if (assign_dx) {
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
      if (dscale) dscale[c] += static_cast<float>(dsc);
    }
  });
}

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

  Tensor mean = Tensor::empty({C}), invstd = Tensor::empty({C});
  Tensor out = Tensor::empty(x.shape());
  batch_norm_forward(out.data(), mean.data(), invstd.data(), x.data(), weight.data(), bias.data(), running_mean.data(),
                     running_var.data(), scaled ? input_scale.data() : nullptr, training, momentum, eps, N, C, HW);
  if (!needs_grad({&x, &weight, &bias, &input_scale})) return out;
  // Backward reads x, gamma, the scale and the statistics; never the output.
  record_op(out, {x, weight, bias, input_scale},
            [training, N, C, HW, x = x.detach(), w = weight.detach(), s = scaled ? input_scale.detach() : Tensor(),
             mean, invstd](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
              bool assign = false;
              float* dx = in[0] ? in[0]->grad_for_write(&assign) : nullptr;
              batch_norm_backward(dx, in[1] ? in[1]->grad_data() : nullptr, in[2] ? in[2]->grad_data() : nullptr,
                                  in[3] ? in[3]->grad_data() : nullptr, assign, o.grad->data(), x.data(), w.data(),
                                  s.defined() ? s.data() : nullptr, mean.data(), invstd.data(), training, N, C, HW);
            });
  return out;
}

}  // namespace qforge
