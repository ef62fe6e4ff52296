// Tests of The thread pool (core/threads.h).
#include <doctest/doctest.h>

#include <atomic>
#include <vector>

#include "core/error.h"
#include "core/threads.h"

using namespace qforge;

TEST_CASE("thread pool: resizing after parallel work, and every index visited once") {
  for (int n : {2, 1, 3, 2}) {
    set_num_threads(n);
    std::vector<int> hits(1000, 0);
    parallel_for(1000, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int h : hits) REQUIRE(h == 1);
  }
  set_num_threads(1);
}

TEST_CASE("thread pool: an exception in any chunk reaches the caller, and the pool keeps working") {
  set_num_threads(2);
  for (int64_t bad : {0, 999}) {  // first chunk (caller) and last chunk (a worker)
    CHECK_THROWS_WITH_AS(parallel_for(1000, 1,
                                      [&](int64_t b, int64_t e) {
                                        if (bad >= b && bad < e) throw Error("chunk failed");
                                      }),
                         "chunk failed", Error);
  }
  std::atomic<int64_t> total{0};
  parallel_for(1000, 1, [&](int64_t b, int64_t e) { total += e - b; });
  CHECK(total == 1000);
  set_num_threads(1);
}
