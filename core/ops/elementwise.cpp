#include "core/ops/elementwise.h"

#include "core/autograd.h"
#include "core/threads.h"

namespace qforge {
namespace {

constexpr int64_t kGrain = 1 << 15;

template <class F>
void for_each_chunk(int64_t n, F&& f) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { f(b, e); });
}

}  // namespace

// Hands the gradient g (of a result that is done with it) to the inputs of an
// add: every input but the first gets a copy or an accumulation, then the
// first, when it has no gradient yet, simply takes g's buffer.
static void give_add_grad(TensorImpl& o, const std::vector<TensorImpl*>& in) {
  const float* g = o.grad->data();
  for (size_t k = in.size(); k-- > 0;) {
    TensorImpl* t = in[k];
    if (!t) continue;
    if (k == 0 && !t->grad) {
      t->grad = o.grad;
      continue;
    }
    bool assign;
    float* gi = t->grad_for_write(&assign);
    for_each_chunk(o.numel(), [&](int64_t s, int64_t e) {
      if (assign) {
        for (int64_t i = s; i < e; ++i) gi[i] = g[i];
      } else {
        for (int64_t i = s; i < e; ++i) gi[i] += g[i];
      }
    });
  }
}

Tensor add(const Tensor& a, const Tensor& b) {
  check_same_shape("add", a, b);
  Tensor out = Tensor::empty(a.shape());
  const float *pa = a.data(), *pb = b.data();
  float* po = out.data();
  for_each_chunk(out.numel(), [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) po[i] = pa[i] + pb[i];
  });
  record_op(out, {a, b}, give_add_grad);
  return out;
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  check_same_shape("add_relu", a, b);
  Tensor out = Tensor::empty(a.shape());
  const float *pa = a.data(), *pb = b.data();
  float* po = out.data();
  for_each_chunk(out.numel(), [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const float v = pa[i] + pb[i];
      po[i] = v > 0.f ? v : 0.f;
    }
  });
  // out = max(a + b, 0): the gradient passes where out > 0, masked in place (the result is done with it).
  record_op(out, {a, b}, [](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    float* g = o.grad->data();
    const float* y = o.data();
    for_each_chunk(o.numel(), [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        const float gv = g[i];
        g[i] = y[i] > 0.f ? gv : 0.f;
      }
    });
    give_add_grad(o, in);
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_same_shape("mul", a, b);
  Tensor out = Tensor::empty(a.shape());
  const float *pa = a.data(), *pb = b.data();
  float* po = out.data();
  for_each_chunk(out.numel(), [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) po[i] = pa[i] * pb[i];
  });
  // d(a*b)/da = b, d(a*b)/db = a
  record_op(out, {a, b}, [a = a.detach(), b = b.detach()](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    const float* g = o.grad->data();
    const float* other[2] = {b.data(), a.data()};
    for (int k = 0; k < 2; ++k) {
      if (!in[k]) continue;
      float* gi = in[k]->grad_data();
      const float* x = other[k];
      for_each_chunk(o.numel(), [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) gi[i] += g[i] * x[i];
      });
    }
  });
  return out;
}

Tensor scale(const Tensor& a, float s) {
  Tensor out = Tensor::empty(a.shape());
  const float* pa = a.data();
  float* po = out.data();
  for_each_chunk(out.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) po[i] = pa[i] * s;
  });
  record_op(out, {a}, [s](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    float* gi = in[0]->grad_data();
    const float* g = o.grad->data();
    for (int64_t i = 0; i < o.numel(); ++i) gi[i] += g[i] * s;
  });
  return out;
}

// clamp(x, 0, hi): relu (hi = inf) and relu6 (hi = 6) share forward and backward.
static Tensor clamp_relu(const Tensor& x, float hi) {
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* po = out.data();
  for_each_chunk(out.numel(), [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float v = px[i] > 0.f ? px[i] : 0.f;
      po[i] = v < hi ? v : hi;
    }
  });
  // out = clamp(x, 0, hi): gradient passes where 0 < x < hi, read off the output.
  record_op(out, {x}, [hi](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    bool assign;
    float* gi = in[0]->grad_for_write(&assign);
    const float* g = o.grad->data();
    const float* y = o.data();
    for_each_chunk(o.numel(), [&](int64_t s, int64_t e) {
      float* __restrict__ dst = gi;
      const float* __restrict__ gg = g;
      const float* __restrict__ yy = y;
      // Unconditional loads and a select, so the loops vectorise.
      const float h = hi;
      if (assign) {
        for (int64_t i = s; i < e; ++i) {
          const float gv = gg[i], yv = yy[i];
          dst[i] = (yv > 0.f && yv < h) ? gv : 0.f;
        }
      } else {
        for (int64_t i = s; i < e; ++i) {
          const float gv = gg[i], yv = yy[i], dv = dst[i];
          dst[i] = dv + (((yv > 0.f) & (yv < h)) ? gv : 0.f);
        }
      }
    });
  });
  return out;
}

Tensor relu(const Tensor& x) { return clamp_relu(x, std::numeric_limits<float>::infinity()); }
Tensor relu6(const Tensor& x) { return clamp_relu(x, 6.f); }

Tensor sum(const Tensor& x) {
  double acc = 0;
  const float* p = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) acc += p[i];
  Tensor out = Tensor::full({1}, static_cast<float>(acc));
  record_op(out, {x}, [](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    float g = o.grad->data()[0];
    float* gi = in[0]->grad_data();
    for (int64_t i = 0; i < in[0]->numel(); ++i) gi[i] += g;
  });
  return out;
}

Tensor mean(const Tensor& x) { return scale(sum(x), 1.f / static_cast<float>(x.numel())); }

}  // namespace qforge
