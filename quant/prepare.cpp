#include "quant/prepare.h"

#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "nn/layers.h"
#include "quant/fused.h"

namespace qforge::quant {
namespace {

std::shared_ptr<FakeQuantize> act_fq(const QConfig& q) {
  return std::make_shared<FakeQuantize>(make_observer(q.activation, activation_scheme()), false);
}

std::shared_ptr<FakeQuantize> weight_fq(const QConfig& q, int oc) {
  QScheme s = q.per_channel ? weight_scheme(oc) : weight_scheme_per_tensor();
  return std::make_shared<FakeQuantize>(make_observer(q.weight, s), q.lsq);
}

// Every name in skip and overrides must be a module of the model: a typo would silently quantize it.
void check_names(const nn::Module& root, const QConfigMapping& qc) {
  std::set<std::string> names{"quant"};
  for (auto& [n, _] : root.named_modules()) names.insert(n);
  auto check = [&](const std::string& n, const char* what) {
    QF_CHECK(names.count(n), std::string("quant.") + what + ": the model has no module '" + n +
                                 "' (names look like conv1, layer1.0.conv1, layer2.0.downsample.0, fc)");
  };
  for (auto& n : qc.skip) check(n, "skip");
  for (auto& [n, _] : qc.overrides) check(n, "overrides");
}

// What prepare attaches to a module, by its kind: weight fake-quant (per its
// qconfig, q; null when the qconfig skips the module) and output fake-quant,
// where the int8 graph requantizes. Modules of other kinds get nothing.
struct PrepareRule {
  bool (*is)(const nn::Module&);
  void (*attach)(nn::Module& m, const std::string& name, const QConfig* q);
};

template <class T>
bool is_a(const nn::Module& m) {
  return dynamic_cast<const T*>(&m) != nullptr;
}

void attach_conv(nn::Module& m, const std::string&, const QConfig* q) {
  if (!q) return;  // stays float
  auto& c = static_cast<ConvBnAct&>(m);
  c.set_weight_fake_quant(weight_fq(*q, c.conv->weight.size(0)));
  c.set_post(act_fq(*q));
}

void attach_linear(nn::Module& m, const std::string&, const QConfig* q) {
  if (!q) return;  // stays float
  auto& l = static_cast<LinearAct&>(m);
  l.set_weight_fake_quant(weight_fq(*q, l.linear->weight.size(0)));
  l.set_post(act_fq(*q));
}

// Modules without weights whose output the int8 graph requantizes.
void attach_output(nn::Module& m, const std::string& name, const QConfig* q) {
  QF_CHECK(q,
           "'" + name + "' (" + m.type() + ") cannot be skipped: only convolutions and linear layers can stay float");
  m.set_post(act_fq(*q));
}

const std::vector<PrepareRule>& prepare_rules() {
  static const std::vector<PrepareRule> rules = {
      {is_a<ConvBnAct>, attach_conv},
      {is_a<LinearAct>, attach_linear},
      {is_a<nn::Add>, attach_output},
      {is_a<nn::AdaptiveAvgPool2d>, attach_output},
  };
  return rules;
}

void insert(nn::Module& root, const QConfigMapping& qc) {
  check_names(root, qc);
  // The model input: a leading Identity child named "quant" (ResNet has one; else it is added).
  if (!root.find_child("quant")) root.insert_child_front("quant", std::make_shared<nn::Identity>());
  QF_CHECK(qc.for_module("quant"), "the model input ('quant') cannot be skipped");
  root.child("quant")->set_post(act_fq(*qc.for_module("quant")));
  for (auto& [name, m] : root.named_modules())
    for (const PrepareRule& r : prepare_rules())
      if (r.is(*m)) {
        r.attach(*m, name, qc.for_module(name));
        break;
      }
}

template <class F>
void each_fq(nn::Module& root, F&& f) {
  for (auto& [_, m] : root.named_modules())
    if (auto fq = std::dynamic_pointer_cast<FakeQuantize>(m)) f(*fq);
}

void require_fused(const nn::Module& root) {
  for (auto& [name, m] : root.named_modules()) {
    bool bare = std::dynamic_pointer_cast<nn::Conv2d>(m) || std::dynamic_pointer_cast<nn::Linear>(m);
    if (!bare) continue;
    // Allowed only as the conv / linear inside a fused module.
    auto dot = name.rfind('.');
    std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
    QF_CHECK(leaf == "conv" || leaf == "linear",
             "prepare: '" + name + "' is a bare " + m->type() + "; run fuse_modules on the model first");
  }
}

}  // namespace

void prepare(nn::Module& root, const QConfigMapping& qc) {
  QF_CHECK(!root.training(),
           "prepare (PTQ) needs a model in eval mode: call eval() first (prepare_qat is for training)");
  require_fused(root);
  insert(root, qc);
  root.eval();
  set_observers(root, true);
  set_fake_quant(root, false);
}

void prepare_qat(nn::Module& root, const QConfigMapping& qc) {
  QF_CHECK(root.training(), "prepare_qat needs a model in training mode: call train() first");
  require_fused(root);
  insert(root, qc);
  root.train();
  set_observers(root, true);
  set_fake_quant(root, true);
}

int calibrate(nn::Module& root, const std::function<bool(Tensor&)>& next_batch, int batches) {
  root.eval();
  set_fake_quant(root, false);
  set_observers(root, true);
  each_fq(root, [](FakeQuantize& fq) { fq.train(true); });
  int done = 0;
  {
    NoGradGuard ng;
    Tensor x;
    while (done < batches && next_batch(x)) {
      root(x);
      ++done;
    }
  }
  root.eval();
  set_observers(root, false);
  set_fake_quant(root, true);
  return done;
}

void set_observers(nn::Module& root, bool on) {
  each_fq(root, [on](FakeQuantize& fq) { fq.observer_enabled = on; });
}

void set_fake_quant(nn::Module& root, bool on) {
  each_fq(root, [on](FakeQuantize& fq) { fq.fake_quant_enabled = on; });
}

void freeze_bn(nn::Module& root) {
  for (auto& [_, m] : root.named_modules())
    if (auto c = std::dynamic_pointer_cast<ConvBnAct>(m)) c->freeze_bn = true;
}

PrepareStats prepare_stats(const nn::Module& root) {
  PrepareStats s;
  for (auto& [name, m] : root.named_modules()) {
    if (auto c = std::dynamic_pointer_cast<ConvBnAct>(m)) {
      c->weight_fake_quant ? ++s.weight_points : ++s.skipped;
    } else if (auto l = std::dynamic_pointer_cast<LinearAct>(m)) {
      l->weight_fake_quant ? ++s.weight_points : ++s.skipped;
    }
    if (m->post()) ++s.activation_points;
  }
  return s;
}

}  // namespace qforge::quant
