#include "core/ops/batchnorm.h"

#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/threads.h"

namespace qforge {

void batch_norm_forward(float* out, float* mean, float* invstd, const float* x, const float* weight, const float* bias,
                        float* running_mean, float* running_var, const float* input_scale, bool training,
                        float momentum, float eps, int64_t N, int64_t C, int64_t HW, ProcessGroup* group) {
  // Statistics are those of x' = x * s[c] (s = input_scale, else 1): mean' = s mean(x), var' = s^2 var(x).
  auto channel_sum = [&](int64_t c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* p = x + (n * C + c) * HW;
      float part = 0;
#pragma omp simd reduction(+ : part)
      for (int64_t i = 0; i < HW; ++i) part += p[i];
      s += part;
    }
    return s;
  };
  auto channel_sqdev = [&](int64_t c, float mx) {
    double ss = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* p = x + (n * C + c) * HW;
      float part = 0;
#pragma omp simd reduction(+ : part)
      for (int64_t i = 0; i < HW; ++i) part += (p[i] - mx) * (p[i] - mx);
      ss += part;
    }
    return ss;
  };
  // m, v: the statistics to normalise with; out = (x s - m) is gamma + beta = x a + b.
  auto normalise = [&](int64_t c, float m, float v) {
    const float sc = input_scale ? input_scale[c] : 1.f;
    float is = 1.f / std::sqrt(v + eps);
    mean[c] = m;
    invstd[c] = is;
    float a = sc * is * weight[c], b = bias[c] - m * is * weight[c];
    for (int64_t n = 0; n < N; ++n) {
      const float* p = x + (n * C + c) * HW;
      float* q = out + (n * C + c) * HW;
      for (int64_t i = 0; i < HW; ++i) q[i] = p[i] * a + b;
    }
  };
  // From the mean of x, the sum of squared deviations from it and the count M: update the running
  // statistics and normalise.
  auto train_channel = [&](int64_t c, float mx, double ss, double M) {
    const float sc = input_scale ? input_scale[c] : 1.f;
    const float m = mx * sc, v = static_cast<float>(ss / M) * sc * sc;
    running_mean[c] = (1 - momentum) * running_mean[c] + momentum * m;
    running_var[c] = (1 - momentum) * running_var[c] + momentum * static_cast<float>(ss / (M - 1)) * sc * sc;
    normalise(c, m, v);
  };
  if (!training) {
    parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) normalise(c, running_mean[c], running_var[c]);
    });
  } else if (!group) {
    const double M = static_cast<double>(N * HW);
    parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        const float mx = static_cast<float>(channel_sum(c) / M);
        train_channel(c, mx, channel_sqdev(c, mx), M);
      }
    });
  } else {
    // The same arithmetic in three passes around two allreduces: [sums, count], then squared deviations.
    std::vector<double> sums(C + 1);
    parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) sums[c] = channel_sum(c);
    });
    sums[C] = static_cast<double>(N * HW);
    group->allreduce_sum(sums.data(), C + 1);
    const double M = sums[C];
    QF_CHECK(M > 1, "batch_norm: training needs more than one value per channel across the ranks");
    std::vector<float> mx(C);
    std::vector<double> ss(C);
    parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        mx[c] = static_cast<float>(sums[c] / M);
        ss[c] = channel_sqdev(c, mx[c]);
      }
    });
    group->allreduce_sum(ss.data(), C);
    parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) train_channel(c, mx[c], ss[c], M);
    });
  }
}

void batch_norm_backward(float* dx, float* dweight, float* dbias, float* dscale, bool assign_dx, const float* dout,
                         const float* x, const float* weight, const float* input_scale, const float* mean,
                         const float* invstd, bool training, int64_t N, int64_t C, int64_t HW,
                         ProcessGroup* group) {
  // In terms of x' = x sc: xhat = (x' - m) is. dbeta = sum dy, dgamma = sum dy * xhat.
  auto sums = [&](int64_t c, double* sdy, double* sdyx) {
    const float sc = input_scale ? input_scale[c] : 1.f;
    const float m = mean[c];
    *sdy = 0, *sdyx = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* p = x + (n * C + c) * HW;
      const float* d = dout + (n * C + c) * HW;
      float a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
      for (int64_t i = 0; i < HW; ++i) {
        a += d[i];
        b += d[i] * (p[i] * sc - m);
      }
      *sdy += a;
      *sdyx += b;
    }
  };
  // The input gradients from the sums over the batch (all ranks' when synchronised) of M values.
  auto input_grads = [&](int64_t c, double sdy, double sdyx, double M) {
    if (!dx && !dscale) return;
    const float sc = input_scale ? input_scale[c] : 1.f;
    const float m = mean[c], is = invstd[c];
    const float dbeta = static_cast<float>(sdy), dgamma = static_cast<float>(sdyx) * is;
    const float gs = weight[c] * is;
    // dx' = gs (dy - dbeta/M - xhat dgamma/M) in training, gs dy in eval;
    // dx = dx' sc, ds = sum dx' x.
    const float Mf = static_cast<float>(M);
    const float k1 = training ? dbeta / Mf : 0.f, k2 = training ? dgamma * is / Mf : 0.f;
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
  };
  auto param_grads = [&](int64_t c, double sdy, double sdyx) {
    if (dweight) dweight[c] += static_cast<float>(sdyx) * invstd[c];
    if (dbias) dbias[c] += static_cast<float>(sdy);
  };
  if (!group || !training) {
    const double M = static_cast<double>(N * HW);
    parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        double sdy, sdyx;
        sums(c, &sdy, &sdyx);
        param_grads(c, sdy, sdyx);
        input_grads(c, sdy, sdyx, M);
      }
    });
    return;
  }
  // dweight and dbias keep this rank's sums; dx needs the global ones.
  std::vector<double> s(2 * C + 1);
  parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      sums(c, &s[c], &s[C + c]);
      param_grads(c, s[c], s[C + c]);
    }
  });
  s[2 * C] = static_cast<double>(N * HW);
  group->allreduce_sum(s.data(), 2 * C + 1);
  parallel_for(C, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) input_grads(c, s[c], s[C + c], s[2 * C]);
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
  ProcessGroup* group = process_group();
  if (!training || (group && !group->sync_batch_norm)) group = nullptr;
  if (training && !group)  // synchronised, the count that matters is the global one (checked there)
    QF_CHECK(M > 1, "batch_norm: training needs more than one value per channel, input " + shape_str(x.shape()));
  Tensor mean = Tensor::empty({C}), invstd = Tensor::empty({C});
  Tensor out = Tensor::empty(x.shape());
  batch_norm_forward(out.data(), mean.data(), invstd.data(), x.data(), weight.data(), bias.data(), running_mean.data(),
                     running_var.data(), scaled ? input_scale.data() : nullptr, training, momentum, eps, N, C, HW,
                     group);
  if (!needs_grad({&x, &weight, &bias, &input_scale})) return out;
  // Backward reads x, gamma, the scale and the statistics; never the output.
  record_op(out, {x, weight, bias, input_scale},
            [training, N, C, HW, group, x = x.detach(), w = weight.detach(), s = scaled ? input_scale.detach() : Tensor(),
             mean, invstd](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
              bool assign = false;
              float* dx = in[0] ? in[0]->grad_for_write(&assign) : nullptr;
              batch_norm_backward(dx, in[1] ? in[1]->grad_data() : nullptr, in[2] ? in[2]->grad_data() : nullptr,
                                  in[3] ? in[3]->grad_data() : nullptr, assign, o.grad->data(), x.data(), w.data(),
                                  s.defined() ? s.data() : nullptr, mean.data(), invstd.data(), training, N, C, HW,
                                  group);
            });
  return out;
}

}  // namespace qforge
