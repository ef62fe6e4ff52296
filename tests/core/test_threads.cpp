// Tests of The thread pool (core/threads.h).
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
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

TEST_CASE("thread pool: several threads calling parallel_for at once each get every index once") {
  // Threads serving one int8 model each run their own loops: one at a time on the pool, the others
  // on their own thread. Meanwhile the main thread resizes the pool (which waits for the running loop).
  set_num_threads(2);
  constexpr int kCallers = 8, kLoops = 300, kN = 1000;
  std::atomic<int> bad{0}, nested_split{0}, errors{0}, chunked{0};
  std::atomic<bool> resized{false};
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t)
    callers.emplace_back([&, t] {
      try {
        std::vector<int> hits(kN);
        // kLoops loops, and 50 more once the resizing is over (on the pool of 2, some must use it).
        for (int l = 0, after = 0; l < kLoops || after < 50; ++l) {
          after += resized.load();
          std::fill(hits.begin(), hits.end(), 0);
          std::atomic<int> pieces{0};
          parallel_for(kN, 1, [&](int64_t b, int64_t e) {
            ++pieces;
            for (int64_t i = b; i < e; ++i) hits[i] += 1 + t;
            // A loop nested in a chunk of a split loop runs on that chunk's thread. (A loop that ran
            // whole, fn(0, kN) on its caller because the pool was size 1 at that moment, leaves the
            // loops nested in it free to use the pool, which may have grown since.)
            const bool split = b != 0 || e != kN;
            parallel_for(4, 1, [&](int64_t nb, int64_t ne) { nested_split += split && (nb != 0 || ne != 4); });
          });
          chunked += pieces > 1;
          for (int h : hits) bad += h != 1 + t;
        }
      } catch (...) {
        ++errors;
      }
    });
  for (int n : {3, 1, 2}) set_num_threads(n);
  resized = true;
  for (auto& th : callers) th.join();
  CHECK(errors == 0);
  CHECK(bad == 0);           // every index of every loop visited exactly once
  CHECK(nested_split == 0);  // no loop nested in a chunk was split again
  CHECK(chunked > 0);  // some loops did run on the pool (the others on their callers' threads)
  set_num_threads(1);
}

TEST_CASE("thread pool: resizing from inside a parallel loop is an error, not a deadlock") {
  set_num_threads(2);
  CHECK_THROWS_WITH_AS(parallel_for(1000, 1, [](int64_t, int64_t) { set_num_threads(3); }),
                       doctest::Contains("inside a parallel loop"), Error);
  CHECK(num_threads() == 2);
  std::atomic<int64_t> total{0};
  parallel_for(1000, 1, [&](int64_t b, int64_t e) { total += e - b; });
  CHECK(total == 1000);
  set_num_threads(1);
}
