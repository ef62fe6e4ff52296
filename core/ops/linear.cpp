#include "core/ops/linear.h"

#include "core/autograd.h"
#include "core/blas.h"
#include "core/error.h"

namespace qforge {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  QF_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
           "linear: input " + shape_str(x.shape()) + " does not match weight " + shape_str(weight.shape()) +
               " (expected (N,IN) and (OUT,IN))");
  const int n = x.size(0), in = x.size(1), outf = weight.size(0);
  if (bias.defined())
    QF_CHECK(bias.numel() == outf,
             "linear: bias " + shape_str(bias.shape()) + " for weight " + shape_str(weight.shape()));
  Tensor out = Tensor::empty({n, outf});
  float* po = out.data();
  if (bias.defined())
    for (int i = 0; i < n; ++i)
      for (int o = 0; o < outf; ++o) po[i * outf + o] = bias.data()[o];
  // out = x W^T + b
  sgemm(false, true, n, outf, in, 1.f, x.data(), in, weight.data(), in, bias.defined() ? 1.f : 0.f, po, outf);
  record_op(
      out, {x, weight, bias},
      [n, in, outf, x = x.detach(), w = weight.detach()](TensorImpl& o, const std::vector<TensorImpl*>& ins) {
        const float* g = o.grad->data();
        if (ins[0])
          sgemm(false, false, n, in, outf, 1.f, g, outf, w.data(), in, 1.f, ins[0]->grad_data(), in);  // dx += dy W
        if (ins[1])
          sgemm(true, false, outf, in, n, 1.f, g, outf, x.data(), in, 1.f, ins[1]->grad_data(), in);  // dW += dy^T x
        if (ins[2]) {
          float* db = ins[2]->grad_data();
          for (int i = 0; i < n; ++i)
            for (int j = 0; j < outf; ++j) db[j] += g[i * outf + j];
        }
      });
  return out;
}

}  // namespace qforge
