#include "core/ops/pool.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/conv_geometry.h"
#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/threads.h"

namespace qforge {
namespace {

Pool2dShape pool_shape(const char* op, const Tensor& x, const Pool2dArgs& a) {
  QF_CHECK(x.dim() == 4, std::string(op) + ": expected input (N,C,H,W), got " + shape_str(x.shape()));
  QF_CHECK(a.kernel_h >= 1 && a.kernel_w >= 1 && a.stride_h >= 1 && a.stride_w >= 1 && a.pad_h >= 0 && a.pad_w >= 0 &&
               2 * a.pad_h <= a.kernel_h && 2 * a.pad_w <= a.kernel_w,
           std::string(op) + ": invalid kernel/stride/padding (padding may be at most half the kernel)");
  Pool2dShape s{x.size(0), x.size(1), x.size(2), x.size(3), 0, 0, a};
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

void max_pool2d_forward(float* out, int32_t* argmax, const float* x, const Pool2dShape& s) {
  const Pool2dArgs& a = s.a;
  const float* px = x;
  float* po = out;
  if (!argmax) {  // no argmax to keep: the selected level's kernel (kernels.h, max_pool.inc)
    const MaxPoolGeo g{s.h, s.w, s.oh, s.ow, a.kernel_h, a.kernel_w, a.stride_h, a.stride_w, a.pad_h, a.pad_w};
    const MaxPoolKernel kernel = float_kernels().max_pool;
    parallel_for(s.n * s.c, 1, [&](int64_t b, int64_t e) {
      std::vector<float> work(2 * s.w);
      kernel(po + b * s.oh * s.ow, px + b * s.h * s.w, e - b, g, work.data());
    });
    return;
  }
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
          argmax[o] = bi;
        }
      }
    }
  });
}

void max_pool2d_backward(float* dx, const float* dout, const int32_t* argmax, const Pool2dShape& s) {
  parallel_for(s.n * s.c, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t i = 0; i < s.oh * s.ow; ++i) {
        int64_t o = p * s.oh * s.ow + i;
        dx[p * s.h * s.w + argmax[o]] += dout[o];
      }
  });
}

Tensor max_pool2d(const Tensor& x, Pool2dArgs a) {
  Pool2dShape s = pool_shape("max_pool2d", x, a);
  Tensor out = Tensor::empty({s.n, s.c, s.oh, s.ow});
  if (!needs_grad({&x})) {
    max_pool2d_forward(out.data(), nullptr, x.data(), s);
    return out;
  }
  // Backward reads only the argmax indices, not x.
  auto argmax = std::make_shared<std::vector<int32_t>>(out.numel());
  max_pool2d_forward(out.data(), argmax->data(), x.data(), s);
  record_op(out, {x}, [s, argmax](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    max_pool2d_backward(in[0]->grad_data(), o.grad->data(), argmax->data(), s);
  });
  return out;
}

namespace {
// Visits each input tap of output (oh, ow) of one plane: f(in_index).
template <class F>
void each_tap(const Pool2dShape& s, int64_t oh, int64_t ow, F&& f) {
  const Pool2dArgs& a = s.a;
  for (int kh = 0; kh < a.kernel_h; ++kh) {
    int64_t ih = oh * a.stride_h - a.pad_h + kh;
    if (ih < 0 || ih >= s.h) continue;
    for (int kw = 0; kw < a.kernel_w; ++kw) {
      int64_t iw = ow * a.stride_w - a.pad_w + kw;
      if (iw >= 0 && iw < s.w) f(ih * s.w + iw);
    }
  }
}
float avg_inv(const Pool2dArgs& a) { return 1.f / static_cast<float>(a.kernel_h * a.kernel_w); }
}  // namespace

void avg_pool2d_forward(float* out, const float* x, const Pool2dShape& s) {
  const float inv = avg_inv(s.a);
  parallel_for(s.n * s.c, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t oh = 0; oh < s.oh; ++oh)
        for (int64_t ow = 0; ow < s.ow; ++ow) {
          float acc = 0;
          each_tap(s, oh, ow, [&](int64_t i) { acc += x[p * s.h * s.w + i]; });
          out[(p * s.oh + oh) * s.ow + ow] = acc * inv;
        }
  });
}

void avg_pool2d_backward(float* dx, const float* dout, const Pool2dShape& s) {
  const float inv = avg_inv(s.a);
  parallel_for(s.n * s.c, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t oh = 0; oh < s.oh; ++oh)
        for (int64_t ow = 0; ow < s.ow; ++ow) {
          float gv = dout[(p * s.oh + oh) * s.ow + ow] * inv;
          each_tap(s, oh, ow, [&](int64_t i) { dx[p * s.h * s.w + i] += gv; });
        }
  });
}

Tensor avg_pool2d(const Tensor& x, Pool2dArgs a) {
  Pool2dShape s = pool_shape("avg_pool2d", x, a);
  Tensor out = Tensor::empty({s.n, s.c, s.oh, s.ow});
  avg_pool2d_forward(out.data(), x.data(), s);
  // Backward reads nothing but dout.
  record_op(out, {x}, [s](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    avg_pool2d_backward(in[0]->grad_data(), o.grad->data(), s);
  });
  return out;
}

void global_avg_pool2d_forward(float* out, const float* x, int64_t planes, int64_t hw) {
  const float inv = 1.f / static_cast<float>(hw);
  parallel_for(planes, 64, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float acc = 0;
      for (int64_t i = 0; i < hw; ++i) acc += x[p * hw + i];
      out[p] = acc * inv;
    }
  });
}

void global_avg_pool2d_backward(float* dx, const float* dout, int64_t planes, int64_t hw) {
  const float inv = 1.f / static_cast<float>(hw);
  parallel_for(planes, 64, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t i = 0; i < hw; ++i) dx[p * hw + i] += dout[p] * inv;
  });
}

Tensor global_avg_pool2d(const Tensor& x) {
  QF_CHECK(x.dim() == 4, "global_avg_pool2d: expected input (N,C,H,W), got " + shape_str(x.shape()));
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  Tensor out = Tensor::empty({x.size(0), x.size(1), 1, 1});
  global_avg_pool2d_forward(out.data(), x.data(), planes, hw);
  record_op(out, {x}, [planes, hw](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    global_avg_pool2d_backward(in[0]->grad_data(), o.grad->data(), planes, hw);
  });
  return out;
}

}  // namespace qforge
