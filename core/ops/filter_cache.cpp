#include "core/ops/filter_cache.h"

#include <atomic>
#include <cstring>

#include "core/threads.h"

namespace qforge {

bool same_bytes(const float* a, const float* b, size_t n) {
  std::atomic<bool> same{true};
  parallel_pieces(static_cast<int64_t>(n), 1 << 16, [&](int64_t i, int64_t e) {
    if (same.load(std::memory_order_relaxed) && std::memcmp(a + i, b + i, (e - i) * sizeof(float)) != 0)
      same.store(false, std::memory_order_relaxed);
  });
  return same.load();
}

std::shared_ptr<const PreparedFilters> prepared_filters(PreparedFilterCache& cache, const float* weight,
                                                        const std::array<int64_t, 4>& shape, int64_t floats,
                                                        const MakeFilters& make) {
  const size_t n = static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]);
  std::shared_ptr<const PreparedFilters> f;
  bool frozen;
  int64_t generation;
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    f = cache.filters, frozen = cache.frozen, generation = cache.generation;
  }
  if (f && f->shape == shape && f->floats == floats &&
      (frozen || (f->source.size() == n && same_bytes(f->source.data(), weight, n))))
    return f;
  auto made = std::make_shared<PreparedFilters>();
  made->shape = shape;
  if (!frozen) made->source.assign(weight, weight + n);  // frozen, never compared
  made->floats = floats;
  made->data = scratch_floats(static_cast<size_t>(floats));
  make(made->data.get(), frozen ? weight : made->source.data());
  std::lock_guard<std::mutex> lock(cache.mu);
  // Kept unless the cache was frozen or thawed meanwhile: filters made before a freeze (from the
  // weights as they were) must not be used unchecked after it, nor uncopied ones be compared.
  if (cache.generation == generation) cache.filters = made;
  return made;
}

void set_frozen(PreparedFilterCache& cache, bool frozen) {
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.frozen = frozen;
  cache.filters.reset();
  ++cache.generation;
}

bool is_frozen(const PreparedFilterCache& cache) {
  std::lock_guard<std::mutex> lock(cache.mu);
  return cache.frozen;
}

int64_t prepared_filter_bytes(const PreparedFilterCache& cache) {
  std::lock_guard<std::mutex> lock(cache.mu);
  if (!cache.filters) return 0;
  return (static_cast<int64_t>(cache.filters->source.size()) + cache.filters->floats) * int64_t{sizeof(float)};
}

}  // namespace qforge
