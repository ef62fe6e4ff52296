// Filters prepared from a layer's weights once for its inference calls (Winograd's transformed
// filters, the channels-last product's packed weights), kept in the layer's ConvFilterCache
// (conv2d.h). Each call compares the weights with the copy the filters were made from, byte for
// byte, and remakes them when anything differs: writes to the weights by any route are never missed.
// A frozen cache (an inference-only model's, conv2d.h: freeze_conv_filters) skips the comparison
// once its filters are made: at batch 1 reading every layer's weights and their copy took longer
// than some of the layers' products.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/ops/scratch.h"

namespace qforge {

struct PreparedFilters {
  std::array<int64_t, 4> shape{};  // the weights' (OC, C, KH, KW)
  std::vector<float> source;       // the weights they were made from (none in a frozen cache)
  Scratch data;                    // what make wrote
  int64_t floats = 0;              // in data
};
struct PreparedFilterCache {
  mutable std::mutex mu;                           // guards the pointer and frozen
  std::shared_ptr<const PreparedFilters> filters;  // a call keeps its own reference while it runs
  bool frozen = false;                             // filters of the right shape are used unchecked
  int64_t generation = 0;                          // counts set_frozen calls
};

// Freezes (or thaws) the cache and drops its filters: the next call makes them from the weights as
// they are then (filters a call made from the weights before, still running, are not kept).
void set_frozen(PreparedFilterCache& cache, bool frozen);
bool is_frozen(const PreparedFilterCache& cache);

// make(dst, weight): writes the `floats` prepared floats of dst from the weights.
using MakeFilters = std::function<void(float* dst, const float* weight)>;

// The cache's filters for weights of `shape`, remade by make unless they were made from weights of
// that shape holding these bytes (frozen: from weights of that shape). The lock only guards the
// pointer: filters never change once made, so callers compare and make them without it.
std::shared_ptr<const PreparedFilters> prepared_filters(PreparedFilterCache& cache, const float* weight,
                                                        const std::array<int64_t, 4>& shape, int64_t floats,
                                                        const MakeFilters& make);

// The bytes a cache holds (filters and their source weights).
int64_t prepared_filter_bytes(const PreparedFilterCache& cache);

// Whether a and b hold the same n floats' bytes, compared on the pool's threads.
bool same_bytes(const float* a, const float* b, size_t n);

}  // namespace qforge
