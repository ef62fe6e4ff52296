#include "optim/sgd.h"

#include "core/error.h"
#include "core/threads.h"

namespace qforge::optim {

SGD::SGD(const nn::NamedTensors& params, const SGDOptions& o) : options(o) {
  for (auto& [name, t] : params) params_.push_back({name, t, Tensor(), o.decay_bn_and_bias || t.dim() > 1});
}

void SGD::zero_grad() {
  for (auto& p : params_) p.p.zero_grad();
}

void SGD::step() {
  const float lr = options.lr, mom = options.momentum;
  for (auto& P : params_) {
    Tensor g = P.p.grad();
    if (!g.defined()) continue;
    const float wd = P.decay ? options.weight_decay : 0.f;
    const bool first = !P.buf.defined();
    if (mom != 0.f && first) P.buf = Tensor::empty(P.p.shape());
    float* p = P.p.data();
    const float* gr = g.data();
    float* buf = mom != 0.f ? P.buf.data() : nullptr;
    const bool nesterov = options.nesterov;
    parallel_for(P.p.numel(), 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float d = gr[i] + wd * p[i];
        if (buf) {
          buf[i] = first ? d : mom * buf[i] + d;
          d = nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] -= lr * d;
      }
    });
  }
}

nn::NamedTensors SGD::state() const {
  nn::NamedTensors out;
  for (auto& P : params_)
    if (P.buf.defined()) out.emplace_back("momentum_buffer." + P.name, P.buf);
  return out;
}

void SGD::load_state(const std::map<std::string, Tensor>& st, const std::string& source) {
  for (auto& P : params_) {
    auto it = st.find("momentum_buffer." + P.name);
    if (it == st.end()) {
      P.buf = Tensor();
      continue;
    }
    QF_CHECK(it->second.numel() == P.p.numel(), source + ": momentum buffer for '" + P.name + "' has shape " +
                                                    shape_str(it->second.shape()) + ", the parameter " +
                                                    shape_str(P.p.shape()));
    P.buf = Tensor::empty(P.p.shape());
    P.buf.copy_from(it->second);
  }
}

}  // namespace qforge::optim
