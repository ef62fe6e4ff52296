// One Int8Runtime serving several threads at once, each with its own Context: the same bytes as
// serial runs, with the process pool (2 threads) shared by every caller.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "quant/runtime.h"
#include "tiny_int8.h"

using namespace qforge;
using namespace qforge::quant;
using qforge::testing::TinyArch;

namespace {

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.numel() * sizeof(float)) == 0;
}

// 8 threads, each its own inputs (batch sizes 1..3, so the contexts' plans differ) and context,
// `rounds` runs each, against the serial results.
void check_threads(const Int8Runtime& rt, int size, int rounds) {
  constexpr int kThreads = 8;
  std::vector<Tensor> x(kThreads), want(kThreads);
  std::mt19937_64 rng(7);
  for (int t = 0; t < kThreads; ++t) {
    x[t] = Tensor::randn({1 + t % 3, rt.graph().input_shape[0], size, size}, rng);
    Int8Runtime::Context ctx;
    want[t] = rt.run(x[t], ctx);
  }
  for (int t = 1; t < kThreads; ++t) REQUIRE(!same_bytes(want[t], want[0]));  // the inputs tell threads apart
  std::atomic<int> wrong{0}, done{0}, errors{0};
  std::vector<Int8Runtime::Context> ctx(kThreads);
  ctx[0].set_profiling(true);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      try {
        for (int r = 0; r < rounds; ++r) {
          Tensor y = rt.run(x[t], ctx[t]);
          wrong += !same_bytes(y, want[t]);
          // The raw-pointer entry too, into the caller's buffer.
          std::vector<float> out(want[t].numel());
          rt.run(x[t].data(), static_cast<int>(x[t].size(0)), size, size, out.data(), ctx[t]);
          wrong += std::memcmp(out.data(), want[t].data(), out.size() * sizeof(float)) != 0;
          ++done;
        }
      } catch (...) {
        ++errors;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  CHECK(done == kThreads * rounds);
  CHECK(wrong == 0);
  // Each context profiled only its own calls: two per round.
  auto prof = ctx[0].profile();
  REQUIRE(!prof.empty());
  for (auto& nt : prof) CHECK(nt.calls.size() == static_cast<size_t>(2 * rounds));
  CHECK(ctx[1].profile().empty());
  CHECK(ctx[1].arena_bytes() > 0);
}

}  // namespace

TEST_CASE("int8 runtime: 8 threads on one model, each with its own context, give the serial bytes") {
  set_num_threads(2);
  SUBCASE("ResNet18 (residual joins fused into convs, max pool, global average pool)") {
    const Int8Runtime rt(testing::tiny_int8_graph(TinyArch::kResNet18, 1, 28, 3));
    check_threads(rt, 28, 6);
  }
  SUBCASE("MobileNetV2 (depthwise convs, ReLU6)") {
    const Int8Runtime rt(testing::tiny_int8_graph(TinyArch::kMobileNetV2, 3, 24, 4));
    check_threads(rt, 24, 3);
  }
  set_num_threads(1);
}

TEST_CASE("int8 runtime: a context moves between runtimes and shapes; run(x) keeps its own context") {
  set_num_threads(2);
  Int8Runtime a(testing::tiny_int8_graph(TinyArch::kResNet18, 1, 16, 5));
  Int8Runtime b(testing::tiny_int8_graph(TinyArch::kResNet18, 1, 16, 6));
  std::mt19937_64 rng(8);
  Tensor x1 = Tensor::randn({2, 1, 16, 16}, rng), x2 = Tensor::randn({3, 1, 20, 20}, rng);
  const Tensor ya = a.run(x1), yb = b.run(x1), ya2 = a.run(x2);
  CHECK(!same_bytes(ya, yb));
  Int8Runtime::Context ctx;
  for (int r = 0; r < 2; ++r) {
    CHECK(same_bytes(a.run(x1, ctx), ya));
    CHECK(same_bytes(b.run(x1, ctx), yb));  // same shape, another runtime: re-planned
    CHECK(same_bytes(a.run(x2, ctx), ya2));
  }
  // The runtime's own context is untouched by the caller's: it still holds the last shape it ran.
  CHECK(a.arena_bytes() > 0);
  CHECK(same_bytes(a.run(x2), ya2));
  // Taps (the unfused path) through a context, then fused again.
  std::map<std::string, Tensor> taps;
  CHECK(same_bytes(a.run(x1, ctx, &taps), ya));
  CHECK(!taps.empty());
  CHECK(same_bytes(a.run(x1, ctx), ya));
  CHECK(a.output_size(16, 16) == 10);
  // A shape the graph cannot take fails by name and leaves the context usable.
  CHECK_THROWS_WITH_AS(a.run(Tensor::zeros({1, 2, 16, 16}), ctx), doctest::Contains("expected input (N,1,H,W)"), Error);
  CHECK(same_bytes(a.run(x1, ctx), ya));
  set_num_threads(1);
}
