#include "core/ops/linear.h"

#include "core/autograd.h"
#include "core/blas.h"
#include "core/error.h"

namespace qforge {

void linear_forward(float* out, const float* x, const float* weight, const float* bias, int n, int in, int outf) {
  if (bias)
    for (int i = 0; i < n; ++i)
      for (int o = 0; o < outf; ++o) out[i * outf + o] = bias[o];
  // out = x W^T + b
  sgemm(false, true, n, outf, in, 1.f, x, in, weight, in, bias ? 1.f : 0.f, out, outf);
}

void linear_backward(float* dx, float* dweight, float* dbias, const float* dout, const float* x, const float* weight,
                     int n, int in, int outf) {
  const float* g = dout;
  if (dx) sgemm(false, false, n, in, outf, 1.f, g, outf, weight, in, 1.f, dx, in);      // dx += dy W
  if (dweight) sgemm(true, false, outf, in, n, 1.f, g, outf, x, in, 1.f, dweight, in);  // dW += dy^T x
  if (dbias)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < outf; ++j) dbias[j] += g[i * outf + j];
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  QF_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
           "linear: input " + shape_str(x.shape()) + " does not match weight " + shape_str(weight.shape()) +
               " (expected (N,IN) and (OUT,IN))");
  const int n = x.size(0), in = x.size(1), outf = weight.size(0);
  if (bias.defined())
    QF_CHECK(bias.numel() == outf,
             "linear: bias " + shape_str(bias.shape()) + " for weight " + shape_str(weight.shape()));
  Tensor out = Tensor::empty({n, outf});
  linear_forward(out.data(), x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, n, in, outf);
  if (!needs_grad({&x, &weight, &bias})) return out;
  // dx reads W, dW reads x: keep each only when its reader is needed.
  record_op(
      out, {x, weight, bias},
      [n, in, outf, x = weight.requires_grad() ? x.detach() : Tensor(),
       w = x.requires_grad() ? weight.detach() : Tensor()](AutogradMeta& o, const std::vector<AutogradMeta*>& ins) {
        linear_backward(ins[0] ? ins[0]->grad_data() : nullptr, ins[1] ? ins[1]->grad_data() : nullptr,
                        ins[2] ? ins[2]->grad_data() : nullptr, o.grad->data(), x.defined() ? x.data() : nullptr,
                        w.defined() ? w.data() : nullptr, n, in, outf);
      });
  return out;
}

}  // namespace qforge
