#include "core/tensor.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

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

// Blocks of kCacheFrom bytes and more (a training step's largest activations
// and gradients) are kept when freed, for the next request of the same size:
// glibc maps each such block afresh (its M_MMAP_THRESHOLD stops at 32 MB) and
// the kernel zeroes every page of it again on first touch, which took 8% of a
// MobileNetV2 training step at 28x28 batch 128 (perf, AMD EPYC Zen 4). At most
// kCacheMax bytes wait; a request that finds no block of its size frees them
// all when its own would not fit beside them.
// Off under AddressSanitizer, which must see every block freed.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kCacheFrom = SIZE_MAX, kCacheMax = 0;
#else
constexpr size_t kCacheFrom = size_t{32} << 20, kCacheMax = size_t{1} << 30;
#endif

struct BlockCache {
  std::mutex m;
  std::unordered_multimap<size_t, void*> blocks;
  size_t bytes = 0;

  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(m);
    if (auto it = blocks.find(size); it != blocks.end()) {
      void* p = it->second;
      blocks.erase(it);
      bytes -= size;
      return p;
    }
    if (bytes + size > kCacheMax) free_all_locked();
    return nullptr;
  }
  void free_all() {
    std::lock_guard<std::mutex> lock(m);
    free_all_locked();
  }
  void free_all_locked() {
    for (auto& [n, p] : blocks) std::free(p);
    blocks.clear();
    bytes = 0;
  }
  bool keep(void* p, size_t size) {
    std::lock_guard<std::mutex> lock(m);
    if (bytes + size > kCacheMax) return false;
    blocks.emplace(size, p);
    bytes += size;
    return true;
  }
};

BlockCache& block_cache() {
  static BlockCache* c = new BlockCache;  // never destroyed: storages may outlive static destruction
  return *c;
}

size_t block_bytes(int64_t n) { return ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64; }
}  // namespace

int64_t Storage::live_bytes() { return g_live.load(); }
int64_t Storage::peak_bytes() { return g_peak.load(); }
void Storage::reset_peak() { g_peak.store(g_live.load()); }

Storage::Storage(int64_t n, bool zero) : n_(n) {
  const size_t bytes = block_bytes(n);
  int64_t now = g_live.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
  for (int64_t p = g_peak.load(); now > p && !g_peak.compare_exchange_weak(p, now);) {
  }
  data_ = bytes >= kCacheFrom ? static_cast<float*>(block_cache().take(bytes)) : nullptr;
  if (!data_) data_ = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!data_ && bytes >= kCacheFrom) {  // the waiting blocks back to the system, then once more
    block_cache().free_all();
    data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
  }
  if (!data_) throw Error("out of memory allocating " + std::to_string(n) + " floats");
  if (zero) std::memset(data_, 0, bytes);
}

Storage::~Storage() {
  const size_t bytes = block_bytes(n_);
  g_live.fetch_sub(static_cast<int64_t>(bytes));
  if (bytes < kCacheFrom || !block_cache().keep(data_, bytes)) std::free(data_);
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
