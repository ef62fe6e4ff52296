// Tests of the prepared-filter cache (core/ops/filter_cache.h) on its own: made once and reused
// while the weights hold the same bytes, remade on any change, frozen made once without a copy,
// and filters made while the cache was frozen or thawed never kept.
#include <doctest/doctest.h>

#include <vector>

#include "core/ops/filter_cache.h"

using namespace qforge;

namespace {

// "Prepared" filters: the weights times two, counting the calls.
struct Doubler {
  int makes = 0;
  std::shared_ptr<const PreparedFilters> operator()(PreparedFilterCache& cache, const std::vector<float>& w) {
    return prepared_filters(cache, w.data(), {2, 3, 1, 1}, 6, [&](float* dst, const float* src) {
      ++makes;
      for (int i = 0; i < 6; ++i) dst[i] = 2 * src[i];
    });
  }
};

}  // namespace

TEST_CASE("filter cache: reused while the bytes are the same, remade on a change, frozen made once") {
  PreparedFilterCache cache;
  Doubler prep;
  std::vector<float> w = {1, 2, 3, 4, 5, 6};
  auto a = prep(cache, w);
  CHECK(prep.makes == 1);
  CHECK(a->data[5] == 12.f);
  CHECK(prepared_filter_bytes(cache) == 12 * int64_t{sizeof(float)});  // the copy and the filters
  CHECK(prep(cache, w) == a);
  CHECK(prep.makes == 1);
  w[5] = -0.f;  // another bit pattern, equal as a float
  auto b = prep(cache, w);
  CHECK(prep.makes == 2);
  CHECK(b != a);
  // Another shape or another count of prepared floats: remade.
  prepared_filters(cache, w.data(), {3, 2, 1, 1}, 6, [](float* dst, const float*) { std::fill(dst, dst + 6, 0.f); });
  CHECK(prep(cache, w) != b);
  CHECK(prep.makes == 3);

  set_frozen(cache, true);
  CHECK(is_frozen(cache));
  CHECK(prepared_filter_bytes(cache) == 0);  // dropped
  auto f = prep(cache, w);
  CHECK(prep.makes == 4);
  CHECK(prepared_filter_bytes(cache) == 6 * int64_t{sizeof(float)});  // no copy of the weights
  w[0] = 100.f;
  CHECK(prep(cache, w) == f);  // not compared
  CHECK(f->data[0] == 2.f);
  set_frozen(cache, false);
  auto t = prep(cache, w);
  CHECK(prep.makes == 5);
  CHECK(t->data[0] == 200.f);
  CHECK(prep(cache, w) == t);
}

TEST_CASE("filter cache: filters made while the cache is frozen or thawed are returned but not kept") {
  for (bool freeze_to : {true, false}) {
    CAPTURE(freeze_to);
    PreparedFilterCache cache;
    set_frozen(cache, !freeze_to);
    std::vector<float> w = {1, 2, 3, 4, 5, 6};
    auto made = prepared_filters(cache, w.data(), {2, 3, 1, 1}, 6, [&](float* dst, const float* src) {
      set_frozen(cache, freeze_to);  // another thread, between the check and the store
      for (int i = 0; i < 6; ++i) dst[i] = src[i];
    });
    CHECK(made->data[2] == 3.f);
    CHECK(cache.filters == nullptr);
    CHECK(prepared_filter_bytes(cache) == 0);
  }
}
