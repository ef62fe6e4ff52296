// Tensor: float32, contiguous row-major, shared storage.
//
//   Tensor x = Tensor::zeros({2, 3});      // shape (2,3)
//   x.data()[0] = 1.f;                      // raw access, row-major
//   Tensor y = x.reshape({3, 2});           // a view: same storage
//   Tensor w = Tensor::randn({4}, rng).requires_grad_();
//
// A Tensor is a handle (copying it shares the data). Gradients live beside the
// data (grad(), see AutogradMeta); ops that record autograd history are in core/ops/ and the graph
// machinery in core/autograd.h.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace qforge {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "(2,3,4)"
int64_t numel_of(const Shape& s);

// 64-byte aligned float buffer; contents uninitialised unless zeroed.
class Storage {
 public:
  // Bytes held by all live storages, and the most held at once since the last reset.
  static int64_t live_bytes();
  static int64_t peak_bytes();
  static void reset_peak();

  explicit Storage(int64_t n, bool zero);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data() { return data_; }
  int64_t size() const { return n_; }

 private:
  float* data_;
  int64_t n_;
};

struct Node;

// A tensor's autograd identity, apart from its data: whether it needs a
// gradient, the gradient, and the node that made it. Nodes point at their
// inputs' identities, not at the inputs, so recording an op keeps no input's
// data alive: each op captures only the buffers its backward reads.
struct AutogradMeta {
  int64_t n = 0;  // elements of the tensor (and of its gradient)
  bool requires_grad = false;
  std::shared_ptr<Storage> grad;  // allocated on first use
  std::shared_ptr<Node> grad_fn;  // set on results of recorded ops

  int64_t numel() const { return n; }
  float* grad_data();  // allocates a zeroed gradient on first use
  // For backward kernels that cover every element: returns the gradient buffer
  // and sets *assign when it was just allocated (uninitialised), so the kernel
  // writes instead of adding and no zeroing pass is spent.
  float* grad_for_write(bool* assign);
};

struct TensorImpl {
  Shape shape;
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;
  std::shared_ptr<AutogradMeta> autograd;  // never null; a view or a detached copy has its own

  int64_t numel() const { return numel_of(shape); }
  float* data() const { return storage->data() + offset; }
  float* grad_data() const { return autograd->grad_data(); }  // allocates a zeroed gradient on first use
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  static Tensor empty(const Shape& shape);  // uninitialised
  static Tensor zeros(const Shape& shape);
  static Tensor full(const Shape& shape, float v);
  static Tensor from(const Shape& shape, const std::vector<float>& values);
  static Tensor randn(const Shape& shape, std::mt19937_64& rng, float stddev = 1.f);
  static Tensor uniform(const Shape& shape, std::mt19937_64& rng, float lo, float hi);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  int64_t dim() const { return static_cast<int64_t>(impl_->shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return impl_->numel(); }
  float* data() const { return impl_->data(); }
  float item() const;  // the single value of a one-element tensor

  bool requires_grad() const { return impl_->autograd->requires_grad; }
  Tensor& requires_grad_(bool on = true);
  // The gradient as a tensor sharing its storage (undefined before backward).
  Tensor grad() const;
  void zero_grad();  // drops the gradient buffer

  // A view with another shape (same numel); -1 infers one dimension.
  // Records autograd history when this tensor needs a gradient.
  Tensor reshape(const Shape& shape) const;
  Tensor detach() const;              // shares data, no history
  Tensor clone() const;               // copies data, no history
  void copy_from(const Tensor& src);  // same numel; raw copy, no history

  // Runs backward from this scalar (see core/autograd.h).
  void backward() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Throws Error "op: expected <what>, got shape (..) and (..)" unless a and b have equal shapes.
void check_same_shape(const char* op, const Tensor& a, const Tensor& b);

}  // namespace qforge
