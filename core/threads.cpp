#include "core/threads.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace qforge {
namespace {

// A fixed set of workers; each parallel_for hands out one chunk per thread.
class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    stopping_ = false;
    // New workers must not mistake the last finished job for a new one.
    const uint64_t gen = generation_;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, gen] { loop(i, gen); });
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    int64_t chunks = std::min<int64_t>(size(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
    if (chunks <= 1 || in_parallel_) {
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> lk(mu_);
    fn_ = &fn;
    n_ = n;
    chunks_ = chunks;
    pending_ = static_cast<int>(chunks - 1);
    ++generation_;
    lk.unlock();
    cv_.notify_all();
    std::exception_ptr mine;
    in_parallel_ = true;
    try {
      fn(0, n / chunks);
    } catch (...) {
      mine = std::current_exception();
    }
    in_parallel_ = false;
    // Always wait: the workers still use fn, which lives in the caller's frame.
    lk.lock();
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    fn_ = nullptr;
    std::exception_ptr err = mine ? mine : worker_error_;
    worker_error_ = nullptr;
    lk.unlock();
    if (err) std::rethrow_exception(err);
  }

 private:
  void loop(int idx, uint64_t seen) {
    for (;;) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      if (idx >= chunks_) continue;
      const auto* fn = fn_;
      int64_t b = n_ * idx / chunks_, e = n_ * (idx + 1) / chunks_;
      lk.unlock();
      std::exception_ptr err;
      in_parallel_ = true;
      try {
        (*fn)(b, e);
      } catch (...) {
        err = std::current_exception();
      }
      in_parallel_ = false;
      lk.lock();
      if (err && !worker_error_) worker_error_ = err;
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunks_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr worker_error_;  // the first exception a worker threw in the current job
  bool stopping_ = false;
  static thread_local bool in_parallel_;
};

thread_local bool Pool::in_parallel_ = false;

int default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

Pool& pool() {
  static Pool p(1);
  return p;
}

int g_threads = 0;

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = default_threads();
  if (n == g_threads) return;
  g_threads = n;
  pool().resize(n);
  openblas_set_num_threads(1);  // see sgemm in core/blas.cpp
}

int num_threads() {
  if (g_threads == 0) set_num_threads(0);
  return g_threads;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (g_threads == 0) set_num_threads(0);
  pool().run(n, grain, fn);
}

}  // namespace qforge
