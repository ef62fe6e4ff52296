// Tests of batch_norm (core/ops/batchnorm.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <exception>
#include <random>
#include <thread>
#include <vector>

#include "core/ops/batchnorm.h"
#include "core/ops/channel.h"
#include "gradcheck.h"
#include "op_test_util.h"

using namespace qforge;
using qforge::testing::Buffers;
using qforge::testing::gradcheck_error;
using qforge::testing::random_values;
using qforge::testing::raw_gradcheck_error;
using qforge::testing::rng;

TEST_CASE("batch_norm: training gradients, statistics and running update") {
  Tensor x = Tensor::randn({3, 2, 3, 2}, rng(), 2.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += 1.5f;
  Tensor w = Tensor::randn({2}, rng()), b = Tensor::randn({2}, rng());
  Tensor rm = Tensor::zeros({2}), rv = Tensor::full({2}, 1.f);
  auto f = [&](const std::vector<Tensor>& t) { return batch_norm(t[0], t[1], t[2], rm, rv, true, 0.1f, 1e-5f); };
  CHECK(gradcheck_error(f, {x, w, b}) < 2e-3);

  // One training step: output has per-channel mean beta and std |gamma|; running stats moved by 0.1.
  rm = Tensor::zeros({2});
  rv = Tensor::full({2}, 1.f);
  Tensor y = batch_norm(x, w, b, rm, rv, true, 0.1f, 0.f);
  for (int c = 0; c < 2; ++c) {
    double s = 0, ss = 0, xs = 0, xss = 0;
    int m = 0;
    for (int n = 0; n < 3; ++n)
      for (int i = 0; i < 6; ++i) {
        float v = y.data()[(n * 2 + c) * 6 + i], xv = x.data()[(n * 2 + c) * 6 + i];
        s += v, ss += v * v, xs += xv, xss += xv * xv, ++m;
      }
    double mean = s / m, var = ss / m - mean * mean, xmean = xs / m, xvar = (xss / m - xmean * xmean);
    CHECK(mean == doctest::Approx(b.data()[c]).epsilon(1e-4));
    CHECK(std::sqrt(var) == doctest::Approx(std::abs(w.data()[c])).epsilon(1e-3));
    CHECK(rm.data()[c] == doctest::Approx(0.1 * xmean).epsilon(1e-4));
    CHECK(rv.data()[c] == doctest::Approx(0.9 + 0.1 * xvar * m / (m - 1)).epsilon(1e-4));
  }
}

TEST_CASE("batch_norm with an input scale equals batch_norm of the scaled input, gradients included") {
  Tensor x = Tensor::randn({3, 2, 3, 2}, rng(), 2.f);
  Tensor w = Tensor::randn({2}, rng()), b = Tensor::randn({2}, rng()), s = Tensor::uniform({2}, rng(), 0.5f, 2.f);
  for (bool training : {true, false}) {
    CAPTURE(training);
    Tensor rm1 = Tensor::zeros({2}), rv1 = Tensor::full({2}, 1.f), rm2 = rm1.clone(), rv2 = rv1.clone();
    Tensor fused = batch_norm(x, w, b, rm1, rv1, training, 0.1f, 1e-5f, s);
    Tensor ref = batch_norm(scale_channels(x, s, 1), w, b, rm2, rv2, training, 0.1f, 1e-5f);
    for (int64_t i = 0; i < x.numel(); ++i) CHECK(fused.data()[i] == doctest::Approx(ref.data()[i]).epsilon(1e-4));
    for (int c = 0; c < 2; ++c) {
      CHECK(rm1.data()[c] == doctest::Approx(rm2.data()[c]).epsilon(1e-5));
      CHECK(rv1.data()[c] == doctest::Approx(rv2.data()[c]).epsilon(1e-5));
    }
    Tensor rm = Tensor::zeros({2}), rv = Tensor::full({2}, 1.f);
    auto f = [&](const std::vector<Tensor>& t) {
      return batch_norm(t[0], t[1], t[2], rm, rv, training, 0.1f, 1e-5f, t[3]);
    };
    CHECK(gradcheck_error(f, {x, w, b, s}) < 2e-3);
  }
}

TEST_CASE("batch_norm: evaluation uses running statistics and leaves them alone") {
  Tensor x = Tensor::randn({2, 3, 2, 2}, rng());
  Tensor w = Tensor::randn({3}, rng()), b = Tensor::randn({3}, rng());
  Tensor rm = Tensor::randn({3}, rng()), rv = Tensor::uniform({3}, rng(), 0.5f, 2.f);
  Tensor rm0 = rm.clone(), rv0 = rv.clone();
  Tensor y = batch_norm(x, w, b, rm, rv, false, 0.1f, 1e-5f);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int c = (i / 4) % 3;
    float want = (x.data()[i] - rm.data()[c]) / std::sqrt(rv.data()[c] + 1e-5f) * w.data()[c] + b.data()[c];
    CHECK(y.data()[i] == doctest::Approx(want).epsilon(1e-5));
  }
  for (int c = 0; c < 3; ++c) CHECK((rm.data()[c] == rm0.data()[c] && rv.data()[c] == rv0.data()[c]));
  auto f = [&](const std::vector<Tensor>& t) { return batch_norm(t[0], t[1], t[2], rm, rv, false, 0.1f, 1e-5f); };
  CHECK(gradcheck_error(f, {x, w, b}) < 2e-3);
}

TEST_CASE("batch_norm raw pair: backward adds the gradients of forward, training and evaluation, with an input scale") {
  const int64_t N = 3, C = 2, HW = 5;
  for (bool training : {true, false}) {
    CAPTURE(training);
    // inputs: x, weight, bias, input scale
    Buffers in{random_values(N * C * HW, 2.f), random_values(C), random_values(C), {0.7f, 1.6f}};
    const std::vector<float> rm0{0.3f, -0.2f}, rv0{1.5f, 0.8f};
    auto forward = [&](const Buffers& t) {
      std::vector<float> out(N * C * HW), mean(C), invstd(C), rm = rm0, rv = rv0;
      batch_norm_forward(out.data(), mean.data(), invstd.data(), t[0].data(), t[1].data(), t[2].data(), rm.data(),
                         rv.data(), t[3].data(), training, 0.1f, 1e-5f, N, C, HW);
      return out;
    };
    auto backward = [&](Buffers& g, const std::vector<float>& dout, const Buffers& t) {
      std::vector<float> out(N * C * HW), mean(C), invstd(C), rm = rm0, rv = rv0;
      batch_norm_forward(out.data(), mean.data(), invstd.data(), t[0].data(), t[1].data(), t[2].data(), rm.data(),
                         rv.data(), t[3].data(), training, 0.1f, 1e-5f, N, C, HW);
      batch_norm_backward(g[0].data(), g[1].data(), g[2].data(), g[3].data(), false, dout.data(), t[0].data(),
                          t[1].data(), t[3].data(), mean.data(), invstd.data(), training, N, C, HW);
    };
    CHECK(raw_gradcheck_error(forward, backward, in) < 2e-3);
  }
}

namespace {

// Two ranks of one process, one thread each: the collectives meet at a barrier, and each rank sums
// both contributions in rank order, so both get the same bytes (as MPI's allreduce gives).
struct PairExchange {
  std::barrier<> meet{2};
  const void* slot[2] = {nullptr, nullptr};
};

class PairGroup : public ProcessGroup {
 public:
  PairGroup(PairExchange& x, int rank) : x_(x), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return 2; }
  void allreduce_sum(double* v, int64_t n) override { reduce(v, n); }
  void allreduce_sum(int64_t* v, int64_t n) override { reduce(v, n); }
  void allreduce_min(float*, int64_t) override { FAIL("batch_norm takes no minimum"); }
  void allreduce_max(float*, int64_t) override { FAIL("batch_norm takes no maximum"); }
  void broadcast(void*, int64_t, int) override { FAIL("batch_norm broadcasts nothing"); }
  void start_allreduce_sum(float*, int64_t) override { FAIL("batch_norm starts no gradient sum"); }
  void progress() override {}
  void wait_all() override {}
  double take_wait_seconds() override { return 0; }

 private:
  template <class T>
  void reduce(T* v, int64_t n) {
    x_.slot[rank_] = v;
    x_.meet.arrive_and_wait();
    std::vector<T> sum(n);
    const T* a = static_cast<const T*>(x_.slot[0]);
    const T* b = static_cast<const T*>(x_.slot[1]);
    for (int64_t i = 0; i < n; ++i) sum[i] = a[i] + b[i];
    x_.meet.arrive_and_wait();  // both have read both before either writes
    std::copy(sum.begin(), sum.end(), v);
  }
  PairExchange& x_;
  int rank_;
};

}  // namespace

TEST_CASE("batch_norm raw pair synchronised over 2 ranks (SyncBatchNorm) equals one process on their union") {
  // 5 samples as shares of 2 and 3; with an input scale (QAT's fused Conv+BN takes that path).
  const int64_t N = 5, C = 3, HW = 4, shares[2] = {2, 3};
  const std::vector<float> x = random_values(N * C * HW, 2.f), w = random_values(C), b = random_values(C),
                           scale{0.7f, 1.6f, 1.1f}, dout = random_values(N * C * HW);
  const std::vector<float> rm0{0.3f, -0.2f, 0.1f}, rv0{1.5f, 0.8f, 1.2f};
  struct Result {
    std::vector<float> out, mean, invstd, rm, rv, dx, dw, db, ds;
  };
  // Samples [n0, n0 + n) of the batch, through forward and backward, in `group` or alone.
  auto run = [&](int64_t n0, int64_t n, ProcessGroup* group) {
    const size_t at = static_cast<size_t>(n0 * C * HW), len = static_cast<size_t>(n * C * HW);
    const std::vector<float> xs(x.begin() + at, x.begin() + at + len), ds(dout.begin() + at, dout.begin() + at + len);
    Result r{std::vector<float>(len), std::vector<float>(C), std::vector<float>(C), rm0, rv0,
             std::vector<float>(len), std::vector<float>(C), std::vector<float>(C), std::vector<float>(C)};
    batch_norm_forward(r.out.data(), r.mean.data(), r.invstd.data(), xs.data(), w.data(), b.data(), r.rm.data(),
                       r.rv.data(), scale.data(), true, 0.1f, 1e-5f, n, C, HW, group);
    batch_norm_backward(r.dx.data(), r.dw.data(), r.db.data(), r.ds.data(), true, ds.data(), xs.data(), w.data(),
                        scale.data(), r.mean.data(), r.invstd.data(), true, n, C, HW, group);
    return r;
  };
  const Result one = run(0, N, nullptr);
  PairExchange exchange;
  Result rank[2];
  {
    PairGroup g0(exchange, 0), g1(exchange, 1);
    std::exception_ptr failed;  // an error on rank 1's thread, rethrown here (rank 0 would wait for it)
    std::thread t1([&] {
      try {
        rank[1] = run(shares[0], shares[1], &g1);
      } catch (...) {
        failed = std::current_exception();
      }
    });
    rank[0] = run(0, shares[0], &g0);
    t1.join();
    if (failed) std::rethrow_exception(failed);
  }
  auto close = [](float a, float b) { return std::abs(a - b) <= 1e-5f * std::max(1.f, std::abs(b)); };
  int64_t n0 = 0;
  for (int r = 0; r < 2; ++r) {
    CAPTURE(r);
    const size_t at = static_cast<size_t>(n0 * C * HW);
    for (size_t i = 0; i < rank[r].out.size(); ++i) {
      CAPTURE(i);
      CHECK(close(rank[r].out[i], one.out[at + i]));
      CHECK(close(rank[r].dx[i], one.dx[at + i]));  // dx needs the global sums of dy and dy * xhat
    }
    for (int64_t c = 0; c < C; ++c) {
      CAPTURE(c);
      CHECK(close(rank[r].mean[c], one.mean[c]));
      CHECK(close(rank[r].invstd[c], one.invstd[c]));
      CHECK(close(rank[r].rm[c], one.rm[c]));
      CHECK(close(rank[r].rv[c], one.rv[c]));  // unbiased with the global count
    }
    n0 += shares[r];
  }
  // The parameters' gradients are each rank's share: the gradient allreduce adds them.
  for (int64_t c = 0; c < C; ++c) {
    CAPTURE(c);
    CHECK(close(rank[0].dw[c] + rank[1].dw[c], one.dw[c]));
    CHECK(close(rank[0].db[c] + rank[1].db[c], one.db[c]));
    CHECK(close(rank[0].ds[c] + rank[1].ds[c], one.ds[c]));
  }
  // Alone, a rank's share is another function: the test can tell.
  const Result alone = run(0, shares[0], nullptr);
  bool differs = false;
  for (size_t i = 0; i < alone.dx.size(); ++i) differs |= !close(alone.dx[i], rank[0].dx[i]);
  CHECK(differs);
}
