#include "optim/sgd.h"

#include <fnmatch.h>

#include "core/error.h"
#include "core/threads.h"

namespace qforge::optim {

SGD::SGD(const nn::NamedTensors& params, const SGDOptions& o, std::vector<ParamGroup> groups)
    : options(o), groups_(std::move(groups)), base_lr_(o.lr) {
  const std::vector<ParamGroup>& G = groups_;
  std::vector<int> taken(G.size(), 0);
  for (auto& [name, t] : params) {
    Param P{name, t, Tensor(), o.decay_bn_and_bias || t.dim() > 1, -1};
    for (size_t g = 0; g < G.size(); ++g)
      if (fnmatch(G[g].match.c_str(), name.c_str(), 0) == 0) {
        P.group = static_cast<int>(g);
        if (G[g].lr) QF_CHECK(o.lr > 0, "parameter groups with their own lr need a positive base lr");
        ++taken[g];
        break;
      }
    params_.push_back(std::move(P));
  }
  for (size_t g = 0; g < G.size(); ++g)
    QF_CHECK(taken[g] > 0,
             "parameter group " + std::to_string(g) + " ('" + G[g].match + "') matches no parameter" +
                 (G[g].match.empty() || params.empty()
                      ? std::string()
                      : " (the names look like '" + params.front().first + "', '" + params.back().first + "')") +
                 (g > 0 ? "; an earlier group may have taken them (the first match wins)" : ""));
}

const SGD::Param& SGD::find(const std::string& name) const {
  for (auto& P : params_)
    if (P.name == name) return P;
  throw Error("SGD: no parameter named '" + name + "'");
}

float SGD::decay_of(const Param& P) const {
  if (!P.decay) return 0.f;
  if (P.group >= 0 && groups_[P.group].weight_decay) return *groups_[P.group].weight_decay;
  return options.weight_decay;
}

float SGD::lr_of(const Param& P) const {
  if (P.group < 0 || !groups_[P.group].lr) return options.lr;
  return *groups_[P.group].lr * (options.lr / base_lr_);  // exactly the group's lr until a schedule moves it
}

float SGD::lr_of(const std::string& name) const { return lr_of(find(name)); }
float SGD::weight_decay_of(const std::string& name) const { return decay_of(find(name)); }

std::vector<int> SGD::group_sizes() const {
  std::vector<int> n(groups_.size() + 1, 0);
  for (auto& P : params_) ++n[P.group >= 0 ? P.group : groups_.size()];
  return n;
}

void SGD::zero_grad() {
  for (auto& p : params_) p.p.zero_grad();
}

void SGD::step() {
  const float mom = options.momentum;
  for (auto& P : params_) {
    Tensor g = P.p.grad();
    if (!g.defined()) continue;
    const float lr = lr_of(P), wd = decay_of(P);
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
