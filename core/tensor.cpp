#include "core/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/autograd.h"
#include "core/error.h"

namespace qforge {

std::string shape_str(const Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ',';
    r += std::to_string(s[i]);
  }
  return r + ")";
}

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

namespace {
std::atomic<int64_t> g_live{0}, g_peak{0};
}  // namespace

int64_t Storage::live_bytes() { return g_live.load(); }
int64_t Storage::peak_bytes() { return g_peak.load(); }
void Storage::reset_peak() { g_peak.store(g_live.load()); }

Storage::Storage(int64_t n, bool zero) : n_(n) {
  size_t bytes = ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64;
  int64_t now = g_live.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
  for (int64_t p = g_peak.load(); now > p && !g_peak.compare_exchange_weak(p, now);) {
  }
  data_ = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!data_) throw Error("out of memory allocating " + std::to_string(n) + " floats");
  if (zero) std::memset(data_, 0, bytes);
}

Storage::~Storage() {
  g_live.fetch_sub(static_cast<int64_t>(((static_cast<size_t>(n_) * sizeof(float) + 63) / 64) * 64));
  std::free(data_);
}

float* AutogradMeta::grad_data() {
  if (!grad) grad = std::make_shared<Storage>(n, true);
  return grad->data();
}

float* AutogradMeta::grad_for_write(bool* assign) {
  *assign = !grad;
  if (!grad) grad = std::make_shared<Storage>(n, false);
  return grad->data();
}

// An impl over storage, with a fresh autograd identity.
static std::shared_ptr<TensorImpl> make_impl(const Shape& shape, std::shared_ptr<Storage> storage, int64_t offset) {
  auto t = std::make_shared<TensorImpl>();
  t->shape = shape;
  t->storage = std::move(storage);
  t->offset = offset;
  t->autograd = std::make_shared<AutogradMeta>();
  t->autograd->n = numel_of(shape);
  return t;
}

static std::shared_ptr<TensorImpl> new_impl(const Shape& shape, bool zero) {
  for (auto d : shape) QF_CHECK(d >= 0, "negative dimension in shape " + shape_str(shape));
  return make_impl(shape, std::make_shared<Storage>(numel_of(shape), zero), 0);
}

Tensor Tensor::empty(const Shape& shape) { return Tensor(new_impl(shape, false)); }
Tensor Tensor::zeros(const Shape& shape) { return Tensor(new_impl(shape, true)); }

Tensor Tensor::full(const Shape& shape, float v) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = v;
  return t;
}

Tensor Tensor::from(const Shape& shape, const std::vector<float>& values) {
  QF_CHECK(numel_of(shape) == static_cast<int64_t>(values.size()), "Tensor::from: shape " + shape_str(shape) +
                                                                       " needs " + std::to_string(numel_of(shape)) +
                                                                       " values, got " + std::to_string(values.size()));
  Tensor t = empty(shape);
  std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::randn(const Shape& shape, std::mt19937_64& rng, float stddev) {
  Tensor t = empty(shape);
  std::normal_distribution<float> d(0.f, stddev);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = d(rng);
  return t;
}

Tensor Tensor::uniform(const Shape& shape, std::mt19937_64& rng, float lo, float hi) {
  Tensor t = empty(shape);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = d(rng);
  return t;
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  if (d < 0) d += n;
  QF_CHECK(d >= 0 && d < n, "dimension " + std::to_string(d) + " out of range for shape " + shape_str(shape()));
  return impl_->shape[d];
}

float Tensor::item() const {
  QF_CHECK(numel() == 1, "item() needs a one-element tensor, got shape " + shape_str(shape()));
  return data()[0];
}

Tensor& Tensor::requires_grad_(bool on) {
  impl_->autograd->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  if (!impl_->autograd->grad) return Tensor();
  return Tensor(make_impl(impl_->shape, impl_->autograd->grad, 0));
}

void Tensor::zero_grad() { impl_->autograd->grad.reset(); }

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      QF_CHECK(infer < 0, "reshape: more than one -1 in " + shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0 && known > 0) s[infer] = numel() / known;
  QF_CHECK(numel_of(s) == numel(),
           "reshape: cannot view shape " + shape_str(this->shape()) + " as " + shape_str(shape));
  Tensor out(make_impl(s, impl_->storage, impl_->offset));
  // The view has its own gradient buffer; backward adds it into ours.
  record_op(out, {*this}, [](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    if (!in[0]) return;
    float* g = in[0]->grad_data();
    const float* go = o.grad->data();
    for (int64_t i = 0; i < o.numel(); ++i) g[i] += go[i];
  });
  return out;
}

Tensor Tensor::detach() const { return Tensor(make_impl(impl_->shape, impl_->storage, impl_->offset)); }

Tensor Tensor::clone() const {
  Tensor t = empty(shape());
  std::memcpy(t.data(), data(), numel() * sizeof(float));
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  QF_CHECK(src.numel() == numel(), "copy_from: shape " + shape_str(src.shape()) + " into " + shape_str(shape()));
  std::memcpy(data(), src.data(), numel() * sizeof(float));
}

void Tensor::backward() const { run_backward(*this); }

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  QF_CHECK(a.shape() == b.shape(),
           std::string(op) + ": shapes differ, " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
}

}  // namespace qforge
