#include "quant/fuse.h"

#include <functional>
#include <map>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/resnet.h"
#include "quant/fused.h"

namespace qforge::quant {
namespace {

using nn::ModulePtr;

// One step of a pattern: a kind of module.
struct Kind {
  const char* name;
  bool (*is)(const nn::Module&);
};

template <class T>
bool is_a(const nn::Module& m) {
  return dynamic_cast<const T*>(&m) != nullptr;
}
// An Add that already applies its ReLU is fused; only a plain one starts a pattern.
bool is_plain_add(const nn::Module& m) {
  auto* a = dynamic_cast<const nn::Add*>(&m);
  return a && !a->relu;
}

const Kind kConv{"Conv2d", is_a<nn::Conv2d>}, kBn{"BatchNorm2d", is_a<nn::BatchNorm2d>}, kReLU{"ReLU", is_a<nn::ReLU>},
    kReLU6{"ReLU6", is_a<nn::ReLU6>}, kLinear{"Linear", is_a<nn::Linear>}, kAdd{"Add", is_plain_add};

// Builds the module that replaces the chain's first module (the others become
// Identity); null when the chain is already what the int8 graph runs.
using Builder = std::function<ModulePtr(const std::vector<ModulePtr>& chain, bool qat)>;

struct Pattern {
  std::vector<Kind> seq;
  Builder build;
  std::string name() const {
    std::string s;
    for (auto& k : seq) {
      if (!s.empty()) s += '+';
      s += k.name;
    }
    return s;
  }
};

Builder conv_bn_act(bool has_bn, Act act) {
  return [=](const std::vector<ModulePtr>& c, bool qat) -> ModulePtr {
    auto f = std::make_shared<ConvBnAct>(std::dynamic_pointer_cast<nn::Conv2d>(c[0]),
                                         has_bn ? std::dynamic_pointer_cast<nn::BatchNorm2d>(c[1]) : nullptr, act);
    if (!qat) f->fold_bn();
    return f;
  };
}

Builder linear_act(Act act) {
  return [=](const std::vector<ModulePtr>& c, bool) -> ModulePtr {
    return std::make_shared<LinearAct>(std::dynamic_pointer_cast<nn::Linear>(c[0]), act);
  };
}

// Tried in this order at each module that starts a pattern: the longest first.
const std::vector<Pattern>& patterns() {
  static const std::vector<Pattern> table = {
      {{kConv, kBn, kReLU}, conv_bn_act(true, Act::kReLU)},
      {{kConv, kBn, kReLU6}, conv_bn_act(true, Act::kReLU6)},
      {{kConv, kBn}, conv_bn_act(true, Act::kNone)},
      {{kConv, kReLU}, conv_bn_act(false, Act::kReLU)},
      {{kConv, kReLU6}, conv_bn_act(false, Act::kReLU6)},
      {{kConv}, conv_bn_act(false, Act::kNone)},
      {{kLinear, kReLU}, linear_act(Act::kReLU)},
      {{kLinear}, linear_act(Act::kNone)},
      {{kAdd, kReLU}, [](const std::vector<ModulePtr>&, bool) -> ModulePtr { return std::make_shared<nn::Add>(true); }},
      {{kAdd}, [](const std::vector<ModulePtr>&, bool) -> ModulePtr { return nullptr; }},
  };
  return table;
}

// Where a module sits in the model, to replace it.
struct Place {
  ModulePtr module;
  std::string name;  // dotted
  nn::Module* parent = nullptr;
  std::string key;  // its name in the parent
  int registrations = 0;
};

void collect_places(nn::Module& m, const std::string& prefix, std::map<const nn::Module*, Place>& out) {
  for (auto& [key, c] : m.children()) {
    std::string name = prefix.empty() ? key : prefix + "." + key;
    Place& p = out[c.get()];
    if (p.registrations++ == 0) p = {c, name, &m, key, 1};
    collect_places(*c, name, out);
  }
}

// The traced forward pass as a data-flow graph. Values are tensor storages:
// value 0 is the model input, each call makes one new value (an Identity or a
// view re-binds the storage it returns to the call that returned it).
struct Flow {
  struct Call {
    const nn::Module* module;
    std::vector<int> inputs;  // -1: made by an operation outside the traced modules
    int output;
  };
  struct Reader {
    int call;  // -1: the model's output
    int pos;
  };
  std::vector<Call> calls;
  std::vector<int> producer;                 // value -> call (-1 for the model input)
  std::vector<std::vector<Reader>> readers;  // value -> its readers
  std::map<const nn::Module*, int> times;    // module -> calls
};

Flow trace(nn::Module& root, const std::vector<int>& shape) {
  QF_CHECK(shape.size() == 3 && shape[0] > 0 && shape[1] > 0 && shape[2] > 0,
           "fuse_modules: the example input shape must be C,H,W (positive), got " + std::to_string(shape.size()) +
               " numbers");
  Tensor x = Tensor::zeros({1, shape[0], shape[1], shape[2]});
  std::vector<nn::TraceEvent> events;
  Tensor y;
  // In eval mode: BN learns no statistics from the example (and runs on a batch of one).
  struct ModeGuard {
    nn::Module& m;
    bool was;
    ~ModeGuard() { m.train(was); }
  } guard{root, root.training()};
  root.eval();
  try {
    NoGradGuard ng;
    nn::Tracer tracer([](const nn::Module& m) { return !nn::is_container(m); });
    y = root(x);
    events = std::move(tracer.events);
  } catch (const Error& e) {
    throw Error("fuse_modules: tracing the model on an input of shape " + shape_str(x.shape()) +
                " failed: " + e.what());
  }

  Flow f;
  std::map<const void*, int> value_of;
  auto storage = [](const Tensor& t) -> const void* { return t.impl()->storage.get(); };
  auto new_value = [&](const Tensor& t, int call) {
    f.producer.push_back(call);
    f.readers.emplace_back();
    int v = static_cast<int>(f.producer.size()) - 1;
    value_of[storage(t)] = v;
    return v;
  };
  new_value(x, -1);
  for (auto& e : events) {
    Flow::Call c{e.module, {}, -1};
    const int id = static_cast<int>(f.calls.size());
    for (size_t i = 0; i < e.inputs.size(); ++i) {
      auto it = value_of.find(storage(e.inputs[i]));
      int v = it == value_of.end() ? -1 : it->second;
      c.inputs.push_back(v);
      if (v >= 0) f.readers[v].push_back({id, static_cast<int>(i)});
    }
    c.output = new_value(e.output, id);
    f.calls.push_back(std::move(c));
    ++f.times[e.module];
  }
  if (auto it = value_of.find(storage(y)); it != value_of.end()) f.readers[it->second].push_back({-1, 0});
  return f;
}

class Fuser {
 public:
  Fuser(nn::Module& root, bool qat, Flow flow) : root_(root), qat_(qat), f_(std::move(flow)) {
    collect_places(root, "", places_);
  }

  FuseReport run() {
    std::set<const nn::Module*> mentioned;  // in a fused group or a skipped candidate
    std::set<const nn::Module*> visited;    // modules called more than once start one attempt
    for (size_t i = 0; i < f_.calls.size(); ++i) {
      const nn::Module* head = f_.calls[i].module;
      if (done_.count(head) || !visited.insert(head).second) continue;
      for (const Pattern& p : patterns()) {
        if (!p.seq[0].is(*head)) continue;
        Attempt a = attempt(p, static_cast<int>(i));
        if (!a.present) continue;
        for (int c : a.chain) mentioned.insert(f_.calls[c].module);
        if (!a.reason.empty()) {
          // Only the longest pattern that the data flow holds but cannot be fused is reported.
          if (!reported_.count(head)) report_.skipped.push_back({p.name(), names(a.chain), a.reason});
          reported_.insert(head);
          continue;
        }
        apply(p, a.chain);
        break;
      }
    }
    report_orphan_bn(mentioned);
    wrap_untraced(root_, "");
    root_.train(root_.training());  // new modules take the root's mode
    return std::move(report_);
  }

 private:
  struct Attempt {
    bool present = false;    // the data flow holds the pattern's kinds, one reading the other
    std::vector<int> chain;  // calls
    std::string reason;      // why it cannot be fused; empty when it can
  };

  std::string name_of(const nn::Module* m) const {
    auto it = places_.find(m);
    return it == places_.end() ? m->type() : it->second.name;
  }
  std::string quoted(int call) const {
    std::string s = "'";
    s += name_of(f_.calls[call].module);
    s += '\'';
    return s;
  }
  std::vector<std::string> names(const std::vector<int>& chain) const {
    std::vector<std::string> out;
    for (int c : chain) out.push_back(name_of(f_.calls[c].module));
    return out;
  }

  // Why this one module cannot be part of a chain of several modules; empty when it can.
  std::string unfusable(int call) const {
    const nn::Module* m = f_.calls[call].module;
    if (int n = f_.times.at(m); n != 1)
      return quoted(call) + " is called " + std::to_string(n) + " times in the forward pass";
    return unplaceable(call);
  }
  std::string unplaceable(int call) const {
    auto it = places_.find(f_.calls[call].module);
    if (it == places_.end()) return quoted(call) + " is not a child module of the model";
    if (it->second.registrations != 1)
      return quoted(call) + " is registered under " + std::to_string(it->second.registrations) + " names";
    if (done_.count(f_.calls[call].module)) return quoted(call) + " is already fused";
    return "";
  }

  Attempt attempt(const Pattern& p, int head) const {
    Attempt a;
    a.chain = {head};
    std::string readers_reason;
    for (size_t k = 1; k < p.seq.size(); ++k) {
      const int v = f_.calls[a.chain.back()].output;
      const auto& rs = f_.readers[v];
      int next = -1;
      for (auto& r : rs)
        if (r.call >= 0 && r.pos == 0 && f_.calls[r.call].inputs.size() == 1 && p.seq[k].is(*f_.calls[r.call].module)) {
          next = r.call;
          break;
        }
      if (next < 0) return a;  // not this pattern
      if (rs.size() != 1 && readers_reason.empty()) {
        std::string list;
        for (auto& r : rs) {
          if (!list.empty()) list += ", ";
          list += r.call < 0 ? std::string("the model output") : quoted(r.call);
        }
        readers_reason =
            "the output of " + quoted(a.chain.back()) + " has " + std::to_string(rs.size()) + " readers (" + list + ")";
      }
      a.chain.push_back(next);
    }
    a.present = true;
    if (a.chain.size() == 1) {
      // Wrapping one module alone computes the same function however often it is called.
      a.reason = unplaceable(head);
      return a;
    }
    a.reason = unfusable(head);
    if (a.reason.empty()) a.reason = readers_reason;
    for (size_t k = 1; k < a.chain.size() && a.reason.empty(); ++k) a.reason = unfusable(a.chain[k]);
    return a;
  }

  void apply(const Pattern& p, const std::vector<int>& chain) {
    std::vector<ModulePtr> mods;
    for (int c : chain) mods.push_back(places_.at(f_.calls[c].module).module);
    for (auto& m : mods) done_.insert(m.get());
    ModulePtr fused = p.build(mods, qat_);
    if (!fused) return;  // nothing to change
    for (size_t k = 0; k < mods.size(); ++k) {
      const Place& pl = places_.at(mods[k].get());
      pl.parent->set_child(pl.key, k == 0 ? fused : std::make_shared<nn::Identity>());
    }
    report_.fused.push_back({p.name(), names(chain)});
  }

  // A BatchNorm2d no conv took: the user may have expected it folded.
  void report_orphan_bn(const std::set<const nn::Module*>& mentioned) {
    std::set<const nn::Module*> seen;
    for (size_t i = 0; i < f_.calls.size(); ++i) {
      const auto& c = f_.calls[i];
      if (!kBn.is(*c.module) || done_.count(c.module) || mentioned.count(c.module) || !seen.insert(c.module).second)
        continue;
      const int v = c.inputs.empty() ? -1 : c.inputs[0];
      const int from = v < 0 ? -1 : f_.producer[v];
      std::string src = v < 0    ? "an operation outside the traced modules"
                        : v == 0 ? "the model input"
                                 : quoted(from) + " (" + f_.calls[from].module->type() + ")";
      report_.skipped.push_back(
          {"Conv2d+BatchNorm2d", {name_of(c.module)}, "its input comes from " + src + ", not from a Conv2d"});
    }
  }

  // Convolutions and linear layers the trace did not reach (not called on the
  // example input, or inside a leaf module) are wrapped alone, as before, so
  // prepare and convert see one kind of layer.
  void wrap_untraced(nn::Module& m, const std::string& prefix) {
    auto kids = m.children();  // a copy: the loop replaces children
    for (auto& [key, c] : kids) {
      std::string name = prefix.empty() ? key : prefix + "." + key;
      if (f_.times.count(c.get()) || done_.count(c.get())) {
        if (!is_a<ConvBnAct>(*c) && !is_a<LinearAct>(*c)) wrap_untraced(*c, name);
        continue;
      }
      const Pattern* p = nullptr;
      if (kConv.is(*c) || kLinear.is(*c))
        for (auto& q : patterns())
          if (q.seq.size() == 1 && q.seq[0].is(*c)) p = &q;
      if (p) {
        m.set_child(key, p->build({c}, qat_));
        done_.insert(c.get());
        report_.fused.push_back({p->name(), {name}});
      } else if (!is_a<ConvBnAct>(*c) && !is_a<LinearAct>(*c)) {
        wrap_untraced(*c, name);
      }
    }
  }

  nn::Module& root_;
  bool qat_;
  Flow f_;
  std::map<const nn::Module*, Place> places_;
  std::set<const nn::Module*> done_, reported_;
  FuseReport report_;
};

}  // namespace

std::string SkippedFusion::describe() const {
  std::string s;
  for (auto& m : modules) {
    if (!s.empty()) s += " + ";
    s += m;
  }
  return s + " (" + pattern + "): " + reason;
}

int FuseReport::fused_modules() const {
  int n = 0;
  for (auto& g : fused) n += g.pattern.rfind("Add", 0) != 0;
  return n;
}

FuseReport fuse_modules(nn::Module& root, bool qat, const std::vector<int>& input_shape) {
  QF_CHECK(qat || !root.training(),
           "fuse_modules for evaluation or PTQ folds BatchNorm: call eval() on the model first");
  return Fuser(root, qat, trace(root, input_shape)).run();
}

}  // namespace qforge::quant
