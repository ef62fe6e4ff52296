#include "core/ops/elementwise.h"

#include <limits>

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

void add_forward(float* out, const float* a, const float* b, int64_t n) {
  for_each_chunk(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = a[i] + b[i];
  });
}

void add_backward(float* da, const float* dout, int64_t n) {
  for_each_chunk(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) da[i] += dout[i];
  });
}

void add_relu_forward(float* out, const float* a, const float* b, int64_t n) {
  for_each_chunk(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const float v = a[i] + b[i];
      out[i] = v > 0.f ? v : 0.f;
    }
  });
}

void add_relu_backward(float* dsum, const float* dout, const float* out, int64_t n) {
  for_each_chunk(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const float gv = dout[i];
      dsum[i] = out[i] > 0.f ? gv : 0.f;
    }
  });
}

void mul_forward(float* out, const float* a, const float* b, int64_t n) {
  for_each_chunk(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = a[i] * b[i];
  });
}

void mul_backward(float* da, float* db, const float* dout, const float* a, const float* b, int64_t n) {
  float* grads[2] = {da, db};
  const float* other[2] = {b, a};
  for (int k = 0; k < 2; ++k) {
    if (!grads[k]) continue;
    float* gi = grads[k];
    const float* x = other[k];
    for_each_chunk(n, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) gi[i] += dout[i] * x[i];
    });
  }
}

void scale_forward(float* out, const float* a, float s, int64_t n) {
  for_each_chunk(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = a[i] * s;
  });
}

void scale_backward(float* da, const float* dout, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) da[i] += dout[i] * s;
}

void clamp_relu_forward(float* out, const float* x, float hi, int64_t n) {
  for_each_chunk(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float v = x[i] > 0.f ? x[i] : 0.f;
      out[i] = v < hi ? v : hi;
    }
  });
}

void clamp_relu_backward(float* dx, bool assign_dx, const float* dout, const float* out, float hi, int64_t n) {
  for_each_chunk(n, [&](int64_t s, int64_t e) {
    float* __restrict__ dst = dx;
    const float* __restrict__ gg = dout;
    const float* __restrict__ yy = out;
    // Unconditional loads and a select, so the loops vectorise.
    const float h = hi;
    if (assign_dx) {
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
}

float sum_forward(const float* x, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += x[i];
  return static_cast<float>(acc);
}

void sum_backward(float* dx, float dout, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] += dout;
}

// Hands the gradient g (of a result that is done with it) to the inputs of an
// add: every input but the first gets a copy or an accumulation, then the
// first, when it has no gradient yet, simply takes g's buffer.
static void give_add_grad(AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
  const float* g = o.grad->data();
  for (size_t k = in.size(); k-- > 0;) {
    AutogradMeta* t = in[k];
    if (!t) continue;
    if (k == 0 && !t->grad) {
      t->grad = o.grad;
      continue;
    }
    bool assign;
    float* gi = t->grad_for_write(&assign);
    if (assign) {
      for_each_chunk(o.numel(), [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) gi[i] = g[i];
      });
    } else {
      add_backward(gi, g, o.numel());
    }
  }
}

Tensor add(const Tensor& a, const Tensor& b) {
  check_same_shape("add", a, b);
  Tensor out = Tensor::empty(a.shape());
  add_forward(out.data(), a.data(), b.data(), out.numel());
  record_op(out, {a, b}, give_add_grad);
  return out;
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  check_same_shape("add_relu", a, b);
  Tensor out = Tensor::empty(a.shape());
  add_relu_forward(out.data(), a.data(), b.data(), out.numel());
  if (!needs_grad({&a, &b})) return out;
  // Backward reads the output (which the next layer keeps anyway), not a or b.
  record_op(out, {a, b}, [y = out.detach()](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    float* g = o.grad->data();
    add_relu_backward(g, g, y.data(), o.numel());  // masked in place: the result is done with it
    give_add_grad(o, in);
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_same_shape("mul", a, b);
  Tensor out = Tensor::empty(a.shape());
  mul_forward(out.data(), a.data(), b.data(), out.numel());
  if (!needs_grad({&a, &b})) return out;
  // da reads b, db reads a: keep only what the needed gradients read.
  record_op(out, {a, b},
            [a = b.requires_grad() ? a.detach() : Tensor(), b = a.requires_grad() ? b.detach() : Tensor()](
                AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
              mul_backward(in[0] ? in[0]->grad_data() : nullptr, in[1] ? in[1]->grad_data() : nullptr, o.grad->data(),
                           a.defined() ? a.data() : nullptr, b.defined() ? b.data() : nullptr, o.numel());
            });
  return out;
}

Tensor scale(const Tensor& a, float s) {
  Tensor out = Tensor::empty(a.shape());
  scale_forward(out.data(), a.data(), s, out.numel());
  record_op(out, {a}, [s](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    scale_backward(in[0]->grad_data(), o.grad->data(), s, o.numel());
  });
  return out;
}

// clamp(x, 0, hi): relu (hi = inf) and relu6 (hi = 6) share forward and backward.
static Tensor clamp_relu(const Tensor& x, float hi) {
  Tensor out = Tensor::empty(x.shape());
  clamp_relu_forward(out.data(), x.data(), hi, out.numel());
  if (!needs_grad({&x})) return out;
  // The gradient passes where 0 < out < hi: backward reads the output (which
  // the next layer keeps anyway), not x. A bit mask would also free the output
  // where nothing else keeps it (QAT: a fake-quant follows), but packing and
  // reading bits without SIMD costs ~10x the float select here.
  record_op(out, {x}, [hi, y = out.detach()](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    bool assign;
    float* gi = in[0]->grad_for_write(&assign);
    clamp_relu_backward(gi, assign, o.grad->data(), y.data(), hi, o.numel());
  });
  return out;
}

Tensor relu(const Tensor& x) { return clamp_relu(x, std::numeric_limits<float>::infinity()); }
Tensor relu6(const Tensor& x) { return clamp_relu(x, 6.f); }

Tensor sum(const Tensor& x) {
  Tensor out = Tensor::full({1}, sum_forward(x.data(), x.numel()));
  record_op(out, {x}, [](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    sum_backward(in[0]->grad_data(), o.grad->data()[0], in[0]->numel());
  });
  return out;
}

Tensor mean(const Tensor& x) { return scale(sum(x), 1.f / static_cast<float>(x.numel())); }

}  // namespace qforge
