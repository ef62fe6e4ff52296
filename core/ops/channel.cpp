#include "core/ops/channel.h"

#include "core/autograd.h"
#include "core/error.h"
#include "core/threads.h"

namespace qforge {
namespace {

// x viewed as (outer, C, inner) for the channel axis.
struct ChannelView {
  int64_t outer, c, inner;
};

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

Tensor scale_channels(const Tensor& x, const Tensor& s, int axis) {
  ChannelView cv = channel_view("scale_channels", x, s, axis);
  Tensor out = Tensor::empty(x.shape());
  const float *px = x.data(), *ps = s.data();
  float* po = out.data();
  parallel_for(cv.outer * cv.c, 8, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float k = ps[r % cv.c];
      for (int64_t i = 0; i < cv.inner; ++i) po[r * cv.inner + i] = px[r * cv.inner + i] * k;
    }
  });
  // dx = dy * s[c];  ds[c] = sum dy * x
  record_op(out, {x, s}, [cv, x = x.detach(), s = s.detach()](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    const float* g = o.grad->data();
    if (in[0]) {
      float* dx = in[0]->grad_data();
      parallel_for(cv.outer * cv.c, 8, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          float k = s.data()[r % cv.c];
          for (int64_t i = 0; i < cv.inner; ++i) dx[r * cv.inner + i] += g[r * cv.inner + i] * k;
        }
      });
    }
    if (in[1]) {
      float* ds = in[1]->grad_data();
      parallel_for(cv.c, 1, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) {
          double acc = 0;
          for (int64_t n = 0; n < cv.outer; ++n) {
            const float* gp = g + (n * cv.c + c) * cv.inner;
            const float* xp = x.data() + (n * cv.c + c) * cv.inner;
            float part = 0;
            for (int64_t i = 0; i < cv.inner; ++i) part += gp[i] * xp[i];
            acc += part;
          }
          ds[c] += static_cast<float>(acc);
        }
      });
    }
  });
  return out;
}

Tensor add_channels(const Tensor& x, const Tensor& b, int axis) {
  ChannelView cv = channel_view("add_channels", x, b, axis);
  Tensor out = Tensor::empty(x.shape());
  const float *px = x.data(), *pb = b.data();
  float* po = out.data();
  parallel_for(cv.outer * cv.c, 8, [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      float k = pb[r % cv.c];
      for (int64_t i = 0; i < cv.inner; ++i) po[r * cv.inner + i] = px[r * cv.inner + i] + k;
    }
  });
  record_op(out, {x, b}, [cv](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    const float* g = o.grad->data();
    if (in[0]) {
      float* dx = in[0]->grad_data();
      for (int64_t i = 0; i < o.numel(); ++i) dx[i] += g[i];
    }
    if (in[1]) {
      float* db = in[1]->grad_data();
      for (int64_t r = 0; r < cv.outer * cv.c; ++r) {
        float part = 0;
        for (int64_t i = 0; i < cv.inner; ++i) part += g[r * cv.inner + i];
        db[r % cv.c] += part;
      }
    }
  });
  return out;
}

Tensor reciprocal(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) out.data()[i] = 1.f / x.data()[i];
  // d(1/x)/dx = -1/x^2 = -out^2
  record_op(out, {x}, [](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    float* dx = in[0]->grad_data();
    const float *g = o.grad->data(), *y = o.data();
    for (int64_t i = 0; i < o.numel(); ++i) dx[i] -= g[i] * y[i] * y[i];
  });
  return out;
}

}  // namespace qforge
