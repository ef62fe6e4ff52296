// Tests of The autograd graph (core/autograd.h).
#include <doctest/doctest.h>

#include <algorithm>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops/elementwise.h"

using namespace qforge;

TEST_CASE("autograd: shared inputs accumulate, no-grad records nothing") {
  Tensor a = Tensor::from({2}, {1.f, 2.f}).requires_grad_();
  Tensor y = sum(mul(a, a));  // d/da sum(a^2) = 2a
  y.backward();
  CHECK(a.grad().data()[0] == 2.f);
  CHECK(a.grad().data()[1] == 4.f);
  {
    NoGradGuard g;
    Tensor z = mul(a, a);
    CHECK_FALSE(z.requires_grad());
  }
  Tensor c = Tensor::from({1}, {3.f});
  CHECK_THROWS_AS(sum(c).backward(), Error);
}

TEST_CASE("autograd: a recorded op keeps only the buffers its backward reads") {
  // 1 MB per activation, so the test's own allocations do not matter.
  const int64_t n = 1 << 18, bytes = n * 4;
  Tensor w = Tensor::full({n}, 2.f).requires_grad_();
  const int64_t base = Storage::live_bytes();
  Tensor loss;
  {
    Tensor a = scale(w, 3.f);  // scale's backward reads nothing of w or a
    Tensor r = relu(a);        // relu's reads a bit mask (not a Storage), sum's nothing
    loss = sum(r);
  }
  // Neither a nor r remains: the graph's identities hold no data.
  CHECK(Storage::live_bytes() - base < bytes / 8);
  loss.backward();
  CHECK(w.grad().data()[0] == 3.f);
  CHECK(w.grad().data()[n - 1] == 3.f);
}

TEST_CASE("storage: a large block freed and asked for again comes back zeroed when zeros are asked for") {
  // 40 MB: past the size whose blocks are kept for reuse (core/tensor.cpp).
  const int64_t n = 10 << 20;
  const int64_t base = Storage::live_bytes();
  for (int round = 0; round < 3; ++round) {
    Tensor z = Tensor::zeros({n});
    CHECK(z.data()[0] == 0.f);
    CHECK(z.data()[n / 2] == 0.f);
    CHECK(z.data()[n - 1] == 0.f);
    CHECK(Storage::live_bytes() - base == n * 4);
    std::fill(z.data(), z.data() + n, 7.f);  // what a reused block would bring back
    Tensor e = Tensor::empty({n});           // a second block of the same size, live at once
    CHECK(e.data() != z.data());
  }
  CHECK(Storage::live_bytes() == base);
}
