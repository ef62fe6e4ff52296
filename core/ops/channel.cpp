#include "core/ops/channel.h"

#include "core/autograd.h"
#include "core/error.h"
#include "core/threads.h"

namespace qforge {
namespace {

ChannelView channel_view(const char* op, const Tensor& x, const Tensor& v, int axis) {
  QF_CHECK((axis == 0 || axis == 1) && x.dim() > axis,
           std::string(op) + ": channel axis " + std::to_string(axis) + " does not exist in " + shape_str(x.shape()));
  ChannelView cv{1, x.size(axis), 1};
  for (int d = 0; d < axis; ++d) cv.outer *= x.size(d);
  for (int64_t d = axis + 1; d < x.dim(); ++d) cv.inner *= x.size(d);
  QF_CHECK(v.numel() == cv.c, std::string(op) + ": vector " + shape_str(v.shape()) + " does not match channels of " +
                                  shape_str(x.shape()) + " on axis " + std::to_string(axis));
  return cv;
}

}  // namespace

void scale_channels_forward(float* out, const float* x, const float* s, const ChannelView& cv) {
  parallel_for(cv.outer * cv.c, 8, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float k = s[r % cv.c];
      for (int64_t i = 0; i < cv.inner; ++i) out[r * cv.inner + i] = x[r * cv.inner + i] * k;
    }
  });
}

void scale_channels_backward(float* dx, float* ds, const float* dout, const float* x, const float* s,
                             const ChannelView& cv) {
  const float* g = dout;
  if (dx) {
    parallel_for(cv.outer * cv.c, 8, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float k = s[r % cv.c];
        for (int64_t i = 0; i < cv.inner; ++i) dx[r * cv.inner + i] += g[r * cv.inner + i] * k;
      }
    });
  }
  if (ds) {
    parallel_for(cv.c, 1, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        double acc = 0;
        for (int64_t n = 0; n < cv.outer; ++n) {
          const float* gp = g + (n * cv.c + c) * cv.inner;
          const float* xp = x + (n * cv.c + c) * cv.inner;
          float part = 0;
          for (int64_t i = 0; i < cv.inner; ++i) part += gp[i] * xp[i];
          acc += part;
        }
        ds[c] += static_cast<float>(acc);
      }
    });
  }
}

void add_channels_forward(float* out, const float* x, const float* b, const ChannelView& cv) {
  parallel_for(cv.outer * cv.c, 8, [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      float k = b[r % cv.c];
      for (int64_t i = 0; i < cv.inner; ++i) out[r * cv.inner + i] = x[r * cv.inner + i] + k;
    }
  });
}

void add_channels_backward(float* dx, float* db, const float* dout, const ChannelView& cv) {
  const float* g = dout;
  if (dx)
    for (int64_t i = 0; i < cv.outer * cv.c * cv.inner; ++i) dx[i] += g[i];
  if (db) {
    for (int64_t r = 0; r < cv.outer * cv.c; ++r) {
      float part = 0;
      for (int64_t i = 0; i < cv.inner; ++i) part += g[r * cv.inner + i];
      db[r % cv.c] += part;
    }
  }
}

void reciprocal_forward(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = 1.f / x[i];
}

void reciprocal_backward(float* dx, const float* dout, const float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] -= dout[i] * out[i] * out[i];
}

Tensor scale_channels(const Tensor& x, const Tensor& s, int axis) {
  ChannelView cv = channel_view("scale_channels", x, s, axis);
  Tensor out = Tensor::empty(x.shape());
  scale_channels_forward(out.data(), x.data(), s.data(), cv);
  if (!needs_grad({&x, &s})) return out;
  // dx reads s, ds reads x: keep x only when ds is needed.
  record_op(out, {x, s},
            [cv, x = s.requires_grad() ? x.detach() : Tensor(), s = s.detach()](AutogradMeta& o,
                                                                                const std::vector<AutogradMeta*>& in) {
              scale_channels_backward(in[0] ? in[0]->grad_data() : nullptr, in[1] ? in[1]->grad_data() : nullptr,
                                      o.grad->data(), x.defined() ? x.data() : nullptr, s.data(), cv);
            });
  return out;
}

Tensor add_channels(const Tensor& x, const Tensor& b, int axis) {
  ChannelView cv = channel_view("add_channels", x, b, axis);
  Tensor out = Tensor::empty(x.shape());
  add_channels_forward(out.data(), x.data(), b.data(), cv);
  record_op(out, {x, b}, [cv](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    add_channels_backward(in[0] ? in[0]->grad_data() : nullptr, in[1] ? in[1]->grad_data() : nullptr, o.grad->data(),
                          cv);
  });
  return out;
}

Tensor reciprocal(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape());
  reciprocal_forward(out.data(), x.data(), x.numel());
  if (!needs_grad({&x})) return out;
  // d(1/x)/dx = -1/x^2 = -out^2: backward reads the output, not x.
  record_op(out, {x}, [y = out.detach()](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    reciprocal_backward(in[0]->grad_data(), o.grad->data(), y.data(), o.numel());
  });
  return out;
}

}  // namespace qforge
