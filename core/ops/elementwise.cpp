#include "core/ops/elementwise.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>

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

namespace {

// Masks: one bit per element, little-endian in 64-bit words. Bits go through
// bytes (0 or 1), which the compare and select loops vectorise on, and a
// multiply per 8 bytes.

// Calls f(b, e) on ranges of [0, n) that start on 64-element boundaries, so
// chunks never share a mask word.
template <class F>
void for_each_word_chunk(int64_t n, F&& f) {
  parallel_for((n + 63) / 64, kGrain / 64, [&](int64_t wb, int64_t we) { f(wb * 64, std::min(n, we * 64)); });
}

// mask words of [b, e) (b a multiple of 64): bit i = pass(y[i]).
template <class P>
void pack_mask(uint64_t* mask, const float* y, int64_t b, int64_t e, P&& pass) {
  alignas(64) uint8_t bytes[64];
  for (int64_t w = b; w < e; w += 64) {
    const int64_t m = std::min<int64_t>(64, e - w);
    for (int64_t k = 0; k < 64; ++k) bytes[k] = k < m ? pass(y[w + k]) : 0;
    uint64_t bits = 0;
    for (int j = 0; j < 8; ++j) {
      uint64_t u;
      std::memcpy(&u, bytes + 8 * j, 8);
      bits |= ((u * 0x0102040810204080ull) >> 56) << (8 * j);  // byte k's low bit -> bit k
    }
    mask[w / 64] = bits;
  }
}

// One mask word as 64 bytes, each nonzero where its bit is set.
inline void unpack_word(uint8_t* bytes, uint64_t bits) {
  for (int j = 0; j < 8; ++j) {
    const uint64_t t = (((bits >> (8 * j)) & 0xff) * 0x0101010101010101ull) & 0x8040201008040201ull;
    std::memcpy(bytes + 8 * j, &t, 8);
  }
}

}  // namespace

void add_relu_forward(float* out, uint64_t* mask, const float* a, const float* b, int64_t n) {
  for_each_word_chunk(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const float v = a[i] + b[i];
      out[i] = v > 0.f ? v : 0.f;
    }
    if (mask) pack_mask(mask, out, s, e, [](float y) { return static_cast<uint8_t>(y > 0.f); });
  });
}

void add_relu_backward(float* dsum, const float* dout, const uint64_t* mask, int64_t n) {
  for_each_word_chunk(n, [&](int64_t s, int64_t e) {
    alignas(64) uint8_t bytes[64];
    for (int64_t w = s; w < e; w += 64) {
      unpack_word(bytes, mask[w / 64]);
      const int64_t m = std::min<int64_t>(64, e - w);
      float* d = dsum + w;  // may alias g: no __restrict__
      const float* g = dout + w;
      for (int64_t k = 0; k < m; ++k) {
        const float gv = g[k];
        d[k] = bytes[k] ? gv : 0.f;
      }
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

void clamp_relu_forward(float* out, uint64_t* mask, const float* x, float hi, int64_t n) {
  for_each_word_chunk(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float v = x[i] > 0.f ? x[i] : 0.f;
      out[i] = v < hi ? v : hi;
    }
    if (mask) pack_mask(mask, out, s, e, [hi](float y) { return static_cast<uint8_t>((y > 0.f) & (y < hi)); });
  });
}

void clamp_relu_backward(float* dx, bool assign_dx, const float* dout, const uint64_t* mask, int64_t n) {
  for_each_word_chunk(n, [&](int64_t s, int64_t e) {
    alignas(64) uint8_t bytes[64];
    for (int64_t w = s; w < e; w += 64) {
      unpack_word(bytes, mask[w / 64]);
      const int64_t m = std::min<int64_t>(64, e - w);
      float* __restrict__ dst = dx + w;
      const float* __restrict__ gg = dout + w;
      // Unconditional loads and a select, so the loops vectorise.
      if (assign_dx) {
        for (int64_t k = 0; k < m; ++k) {
          const float gv = gg[k];
          dst[k] = bytes[k] ? gv : 0.f;
        }
      } else {
        for (int64_t k = 0; k < m; ++k) {
          const float gv = gg[k], dv = dst[k];
          dst[k] = dv + (bytes[k] ? gv : 0.f);
        }
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
  if (!needs_grad({&a, &b})) {
    add_relu_forward(out.data(), nullptr, a.data(), b.data(), out.numel());
    return out;
  }
  // Backward reads one bit per element (out > 0), not a, b or the output.
  std::shared_ptr<uint64_t[]> mask(new uint64_t[(out.numel() + 63) / 64]);
  add_relu_forward(out.data(), mask.get(), a.data(), b.data(), out.numel());
  record_op(out, {a, b}, [mask](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    float* g = o.grad->data();
    add_relu_backward(g, g, mask.get(), o.numel());  // masked in place: the result is done with it
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
  if (!needs_grad({&x})) {
    clamp_relu_forward(out.data(), nullptr, x.data(), hi, out.numel());
    return out;
  }
  // The gradient passes where 0 < out < hi: backward reads that bit per element,
  // not x or the output (which, in QAT, the fake-quant after it does not keep).
  std::shared_ptr<uint64_t[]> mask(new uint64_t[(out.numel() + 63) / 64]);
  clamp_relu_forward(out.data(), mask.get(), x.data(), hi, out.numel());
  record_op(out, {x}, [mask](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    bool assign;
    float* gi = in[0]->grad_for_write(&assign);
    clamp_relu_backward(gi, assign, o.grad->data(), mask.get(), o.numel());
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
