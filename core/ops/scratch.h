// Scratch memory for the ops: uninitialised floats, 64-byte aligned like
// tensors, so whether SIMD rows straddle cache lines does not depend on where
// malloc put a buffer.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace qforge {

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Scratch = std::unique_ptr<float[], FreeDeleter>;

inline Scratch scratch_floats(size_t n) {
  const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes ? bytes : 64);
  if (!p) throw std::bad_alloc();
  return Scratch(static_cast<float*>(p));
}

// Zeros, for buffers whose frame must read as zeros.
inline Scratch zeroed(int64_t n) {
  Scratch p = scratch_floats(static_cast<size_t>(n));
  std::fill(p.get(), p.get() + n, 0.f);
  return p;
}

}  // namespace qforge
