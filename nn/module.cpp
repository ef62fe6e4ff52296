#include "nn/module.h"

#include <set>

#include "core/error.h"

namespace qforge::nn {

namespace {
thread_local Tracer* g_tracer = nullptr;
}

Tracer::Tracer(std::function<bool(const Module&)> is_leaf) : is_leaf_(std::move(is_leaf)) { g_tracer = this; }
Tracer::~Tracer() { g_tracer = nullptr; }

Tensor Tracer::call(const Module& m, std::vector<Tensor> inputs, const std::function<Tensor()>& fn) {
  Tracer* t = g_tracer;
  if (!t || t->depth_ > 0 || !t->is_leaf_(m)) return fn();
  ++t->depth_;
  Tensor y;
  try {
    y = fn();
  } catch (...) {
    --t->depth_;
    throw;
  }
  --t->depth_;
  t->events.push_back({&m, std::move(inputs), y});
  return y;
}

Tensor Module::operator()(const Tensor& x) {
  auto run = [&] {
    Tensor y = forward(x);
    return post_ ? post_->forward(y) : y;
  };
  if (!g_tracer) return run();
  return Tracer::call(*this, {x}, run);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, c] : children_) c->train(on);
}

static std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

NamedTensors Module::named_parameters(const std::string& prefix) const {
  NamedTensors out;
  for (auto& [n, t] : params_) out.emplace_back(join(prefix, n), t);
  for (auto& [n, c] : children_)
    for (auto& p : c->named_parameters(join(prefix, n))) out.push_back(std::move(p));
  return out;
}

NamedTensors Module::named_buffers(const std::string& prefix) const {
  NamedTensors out;
  for (auto& [n, t] : buffers_) out.emplace_back(join(prefix, n), t);
  for (auto& [n, c] : children_)
    for (auto& p : c->named_buffers(join(prefix, n))) out.push_back(std::move(p));
  return out;
}

static void collect_state(const Module& m, const std::string& prefix, NamedTensors& out) {
  for (auto& [n, t] : m.own_parameters()) out.emplace_back(join(prefix, n), t);
  for (auto& [n, t] : m.own_buffers()) out.emplace_back(join(prefix, n), t);
  for (auto& [n, c] : m.children()) collect_state(*c, join(prefix, n), out);
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect_state(*this, "", out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters()) out.push_back(t);
  return out;
}

bool name_under(const std::string& name, const std::string& prefix) {
  std::string p = prefix;
  while (!p.empty() && p.back() == '.') p.pop_back();
  return !p.empty() && name.rfind(p, 0) == 0 && (name.size() == p.size() || name[p.size()] == '.');
}

// Up to five names, then how many more.
static std::string name_list(const std::vector<std::string>& names) {
  std::string list;
  for (size_t i = 0; i < names.size() && i < 5; ++i) list += (i ? ", " : "") + names[i];
  if (names.size() > 5) list += ", ... (" + std::to_string(names.size() - 5) + " more)";
  return list;
}

std::vector<std::string> Module::load_state_dict(const std::map<std::string, Tensor>& sd, const std::string& source,
                                                 bool strict, const std::vector<std::string>& skip) {
  auto skipped = [&](const std::string& name) {
    for (auto& p : skip)
      if (name_under(name, p)) return true;
    return false;
  };
  // Everything is checked before anything is copied: a failed load leaves the model as it was.
  std::set<std::string> used;
  std::vector<std::string> missing, kept;
  NamedTensors mine = state_dict();
  for (auto& p : skip) {
    bool any = false;
    for (auto& [name, _] : mine) any = any || name_under(name, p);
    QF_CHECK(any, source + ": the skip prefix '" + p + "' names no tensor of the model");
  }
  for (auto& [name, t] : mine) {
    if (skipped(name)) {
      kept.push_back(name);
      continue;
    }
    auto it = sd.find(name);
    if (it == sd.end()) {
      missing.push_back(name);
      continue;
    }
    QF_CHECK(
        it->second.numel() == t.numel() && (it->second.shape() == t.shape() || it->second.dim() == 0 || t.dim() == 0),
        source + ": tensor '" + name + "' has shape " + shape_str(it->second.shape()) + ", the model expects " +
            shape_str(t.shape()));
    used.insert(name);
  }
  if (strict) {
    QF_CHECK(missing.empty(), source + ": missing " + std::to_string(missing.size()) +
                                  " tensor(s) the model needs: " + name_list(missing));
    std::vector<std::string> unexpected;
    for (auto& [name, _] : sd)
      if (!used.count(name) && !skipped(name)) unexpected.push_back(name);
    QF_CHECK(unexpected.empty(), source + ": " + std::to_string(unexpected.size()) +
                                     " tensor(s) not in the model: " + name_list(unexpected));
  }
  for (auto& [name, t] : mine) {
    if (!used.count(name)) continue;
    t.copy_from(sd.find(name)->second);
  }
  return kept;
}

ModulePtr Module::find_child(const std::string& name) const {
  for (auto& [n, c] : children_)
    if (n == name) return c;
  return nullptr;
}

ModulePtr Module::child(const std::string& name) const {
  ModulePtr c = find_child(name);
  QF_CHECK(c, type() + " has no child module '" + name + "'");
  return c;
}

void Module::set_child(const std::string& name, ModulePtr m) {
  for (auto& [n, c] : children_)
    if (n == name) {
      c = std::move(m);
      return;
    }
  children_.emplace_back(name, std::move(m));
}

void Module::insert_child_front(const std::string& name, ModulePtr m) {
  remove_child(name);
  children_.insert(children_.begin(), {name, std::move(m)});
}

void Module::remove_child(const std::string& name) {
  std::erase_if(children_, [&](auto& p) { return p.first == name; });
}

std::vector<std::pair<std::string, ModulePtr>> Module::named_modules(const std::string& prefix) const {
  std::vector<std::pair<std::string, ModulePtr>> out;
  for (auto& [n, c] : children_) {
    out.emplace_back(join(prefix, n), c);
    for (auto& p : c->named_modules(join(prefix, n))) out.push_back(std::move(p));
  }
  return out;
}

void Module::set_post(ModulePtr m) {
  post_ = m;
  if (m) {
    set_child("activation_post_process", m);
  } else {
    remove_child("activation_post_process");
  }
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  t.requires_grad_(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  buffers_.emplace_back(name, t);
  return t;
}

Tensor& Module::parameter(const std::string& name) {
  for (auto& [n, t] : params_)
    if (n == name) return t;
  throw Error(type() + " has no parameter '" + name + "'");
}

int64_t count_parameters(const Module& m) {
  int64_t n = 0;
  for (auto& [_, t] : m.named_parameters()) n += t.numel();
  return n;
}

}  // namespace qforge::nn
