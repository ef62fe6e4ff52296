#include "core/ops/pool.h"

#include <algorithm>
#include <limits>

#include "core/autograd.h"
#include "core/conv_geometry.h"
#include "core/error.h"
#include "core/threads.h"

namespace qforge {
namespace {

struct PoolShape {
  int64_t n, c, h, w, oh, ow;
};

PoolShape pool_shape(const char* op, const Tensor& x, const Pool2dArgs& a) {
  QF_CHECK(x.dim() == 4, std::string(op) + ": expected input (N,C,H,W), got " + shape_str(x.shape()));
  QF_CHECK(a.kernel_h >= 1 && a.kernel_w >= 1 && a.stride_h >= 1 && a.stride_w >= 1 && a.pad_h >= 0 && a.pad_w >= 0 &&
               2 * a.pad_h <= a.kernel_h && 2 * a.pad_w <= a.kernel_w,
           std::string(op) + ": invalid kernel/stride/padding (padding may be at most half the kernel)");
  PoolShape s{x.size(0), x.size(1), x.size(2), x.size(3), 0, 0};
  const ConvGeometry g{a.stride_h, a.stride_w, a.pad_h, a.pad_w, 1, 1, 1};  // the conv formula, dilation 1
  s.oh = g.out_h(static_cast<int>(s.h), a.kernel_h);
  s.ow = g.out_w(static_cast<int>(s.w), a.kernel_w);
  QF_CHECK(s.oh > 0 && s.ow > 0, std::string(op) + ": input " + shape_str(x.shape()) + " smaller than the kernel");
  return s;
}

// A window along one axis: it starts at input i0 = o * stride - pad, and its
// taps k0 .. k1 fall inside [0, size).
struct Window {
  int64_t i0, k0, k1;
};

Window window(int64_t o, int stride, int pad, int kernel, int64_t size) {
  const int64_t i0 = o * stride - pad;
  return {i0, std::max<int64_t>(0, -i0), std::min<int64_t>(kernel, size - i0)};
}

}  // namespace

Tensor max_pool2d(const Tensor& x, Pool2dArgs a) {
  PoolShape s = pool_shape("max_pool2d", x, a);
  Tensor out = Tensor::empty({s.n, s.c, s.oh, s.ow});
  const float* px = x.data();
  float* po = out.data();
  if (!needs_grad({&x})) {
    // No argmax to keep: the maximum down the window's rows, then along them.
    parallel_for(s.n * s.c, 1, [&](int64_t b, int64_t e) {
      std::vector<float> rm(s.w);
      for (int64_t p = b; p < e; ++p) {
        const float* in = px + p * s.h * s.w;
        for (int64_t oh = 0; oh < s.oh; ++oh) {
          const Window wh = window(oh, a.stride_h, a.pad_h, a.kernel_h, s.h);
          std::copy_n(in + (wh.i0 + wh.k0) * s.w, s.w, rm.data());
          for (int64_t kh = wh.k0 + 1; kh < wh.k1; ++kh) {
            const float* row = in + (wh.i0 + kh) * s.w;
            for (int64_t i = 0; i < s.w; ++i) rm[i] = std::max(rm[i], row[i]);
          }
          float* o = po + (p * s.oh + oh) * s.ow;
          for (int64_t ow = 0; ow < s.ow; ++ow) {
            const Window ww = window(ow, a.stride_w, a.pad_w, a.kernel_w, s.w);
            float best = rm[ww.i0 + ww.k0];
            for (int64_t kw = ww.k0 + 1; kw < ww.k1; ++kw) best = std::max(best, rm[ww.i0 + kw]);
            o[ow] = best;
          }
        }
      }
    });
    return out;
  }
  auto argmax = std::make_shared<std::vector<int32_t>>(out.numel());
  parallel_for(s.n * s.c, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* in = px + p * s.h * s.w;
      for (int64_t oh = 0; oh < s.oh; ++oh) {
        const Window wh = window(oh, a.stride_h, a.pad_h, a.kernel_h, s.h);
        for (int64_t ow = 0; ow < s.ow; ++ow) {
          const Window ww = window(ow, a.stride_w, a.pad_w, a.kernel_w, s.w);
          // Padding is never the max: the window always holds a real pixel (pad <= kernel / 2).
          int32_t bi = static_cast<int32_t>((wh.i0 + wh.k0) * s.w + ww.i0 + ww.k0);
          float best = in[bi];
          for (int64_t kh = wh.k0; kh < wh.k1; ++kh)
            for (int64_t kw = ww.k0; kw < ww.k1; ++kw) {
              int32_t idx = static_cast<int32_t>((wh.i0 + kh) * s.w + ww.i0 + kw);
              if (in[idx] > best) best = in[idx], bi = idx;
            }
          int64_t o = (p * s.oh + oh) * s.ow + ow;
          po[o] = best;
          (*argmax)[o] = bi;
        }
      }
    }
  });
  record_op(out, {x}, [s, argmax](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    float* dx = in[0]->grad_data();
    const float* g = o.grad->data();
    parallel_for(s.n * s.c, 1, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p)
        for (int64_t i = 0; i < s.oh * s.ow; ++i) {
          int64_t o = p * s.oh * s.ow + i;
          dx[p * s.h * s.w + (*argmax)[o]] += g[o];
        }
    });
  });
  return out;
}

Tensor avg_pool2d(const Tensor& x, Pool2dArgs a) {
  PoolShape s = pool_shape("avg_pool2d", x, a);
  Tensor out = Tensor::empty({s.n, s.c, s.oh, s.ow});
  const float* px = x.data();
  float* po = out.data();
  const float inv = 1.f / static_cast<float>(a.kernel_h * a.kernel_w);
  // Visits each (output, input) pair of one plane: f(out_index, in_index).
  auto each_tap = [s, a](int64_t oh, int64_t ow, auto&& f) {
    for (int kh = 0; kh < a.kernel_h; ++kh) {
      int64_t ih = oh * a.stride_h - a.pad_h + kh;
      if (ih < 0 || ih >= s.h) continue;
      for (int kw = 0; kw < a.kernel_w; ++kw) {
        int64_t iw = ow * a.stride_w - a.pad_w + kw;
        if (iw >= 0 && iw < s.w) f(ih * s.w + iw);
      }
    }
  };
  parallel_for(s.n * s.c, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t oh = 0; oh < s.oh; ++oh)
        for (int64_t ow = 0; ow < s.ow; ++ow) {
          float acc = 0;
          each_tap(oh, ow, [&](int64_t i) { acc += px[p * s.h * s.w + i]; });
          po[(p * s.oh + oh) * s.ow + ow] = acc * inv;
        }
  });
  record_op(out, {x}, [s, inv, each_tap](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    float* dx = in[0]->grad_data();
    const float* g = o.grad->data();
    parallel_for(s.n * s.c, 1, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p)
        for (int64_t oh = 0; oh < s.oh; ++oh)
          for (int64_t ow = 0; ow < s.ow; ++ow) {
            float gv = g[(p * s.oh + oh) * s.ow + ow] * inv;
            each_tap(oh, ow, [&](int64_t i) { dx[p * s.h * s.w + i] += gv; });
          }
    });
  });
  return out;
}

Tensor global_avg_pool2d(const Tensor& x) {
  QF_CHECK(x.dim() == 4, "global_avg_pool2d: expected input (N,C,H,W), got " + shape_str(x.shape()));
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  Tensor out = Tensor::empty({x.size(0), x.size(1), 1, 1});
  const float* px = x.data();
  float* po = out.data();
  const float inv = 1.f / static_cast<float>(hw);
  parallel_for(planes, 64, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float acc = 0;
      for (int64_t i = 0; i < hw; ++i) acc += px[p * hw + i];
      po[p] = acc * inv;
    }
  });
  record_op(out, {x}, [planes, hw, inv](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    float* dx = in[0]->grad_data();
    const float* g = o.grad->data();
    parallel_for(planes, 64, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p)
        for (int64_t i = 0; i < hw; ++i) dx[p * hw + i] += g[p] * inv;
    });
  });
  return out;
}

}  // namespace qforge
