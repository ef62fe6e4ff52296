#include "core/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"

extern "C" void openblas_set_num_threads(int);

namespace qforge {
namespace {

// How long a thread spins for the next job (a worker) or for the others to
// finish (the caller) before it sleeps. A forward pass is hundreds of short
// parallel loops; waking a sleeping thread costs tens of microseconds each.
constexpr auto kSpin = std::chrono::microseconds(100);

// Spins until done() or kSpin has passed; true if done() became true.
template <typename F>
bool spin_until(F&& done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() > until) return done();
  }
}

// A fixed set of workers; each parallel_for hands out one chunk per thread.
// A job is published under the mutex by bumping generation_; workers spin on
// it for a while, then sleep on cv_ (counted in sleepers_, so the caller only
// makes the wake-up call when someone sleeps).
// One job at a time: a caller holds busy_ from publishing its job until the
// workers are done with it. A caller that finds busy_ taken (another thread's
// job is running: several threads serving one int8 model) runs its whole loop
// itself rather than wait: it never blocks on another caller, the cores are
// busy anyway, and a loop's chunks are disjoint so the result is the same.
class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  // Read without the lock by callers sizing their loop; workers_ itself only under busy_.
  int size() const { return size_.load(std::memory_order_relaxed); }
  static bool in_parallel() { return in_parallel_; }

  // Waits for a running job to finish (not to be called inside one: see set_num_threads).
  void resize(int n) {
    std::lock_guard<std::mutex> busy(busy_);
    stop();
    stopping_ = false;
    // New workers must not mistake the last finished job for a new one.
    const uint64_t gen = generation_.load();
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, gen] { loop(i, gen); });
    size_.store(static_cast<int>(workers_.size()) + 1);
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    int64_t chunks = std::min<int64_t>(size(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
    if (chunks <= 1 || in_parallel_) {
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {  // another thread's job is running
      in_parallel_ = true;    // and loops nested in fn run here too
      try {
        fn(0, n);
      } catch (...) {
        in_parallel_ = false;
        throw;
      }
      in_parallel_ = false;
      return;
    }
    // The pool may have been resized since size() was read; now it cannot be.
    chunks = std::min<int64_t>(chunks, static_cast<int64_t>(workers_.size()) + 1);
    if (chunks <= 1) {
      busy.unlock();
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> lk(mu_);
    fn_ = &fn;
    n_ = n;
    chunks_ = chunks;
    pending_.store(static_cast<int>(chunks - 1));
    generation_.fetch_add(1, std::memory_order_release);
    const bool wake = sleepers_ > 0;
    lk.unlock();
    if (wake) cv_.notify_all();
    std::exception_ptr mine;
    in_parallel_ = true;
    try {
      fn(0, n / chunks);
    } catch (...) {
      mine = std::current_exception();
    }
    in_parallel_ = false;
    // Always wait: the workers still use fn, which lives in the caller's frame.
    if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      lk.lock();
      done_cv_.wait(lk, [this] { return pending_.load() == 0; });
      lk.unlock();
    }
    lk.lock();
    fn_ = nullptr;
    std::exception_ptr err = mine ? mine : worker_error_;
    worker_error_ = nullptr;
    lk.unlock();
    if (err) std::rethrow_exception(err);
  }

 private:
  void loop(int idx, uint64_t seen) {
    for (;;) {
      spin_until([&] { return stopping_.load() || generation_.load(std::memory_order_acquire) != seen; });
      std::unique_lock<std::mutex> lk(mu_);
      ++sleepers_;
      cv_.wait(lk, [&] { return stopping_.load() || generation_.load() != seen; });
      --sleepers_;
      if (stopping_) return;
      seen = generation_.load();
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
      if (err) {
        lk.lock();
        if (!worker_error_) worker_error_ = err;
        lk.unlock();
      }
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        lk.lock();  // the caller may be between its check and its wait
        lk.unlock();
        done_cv_.notify_one();
      }
    }
  }

  void stop() {
    size_.store(1);
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::atomic<int> size_{1};
  std::mutex busy_;  // held by the caller whose job the workers run (and by resize)
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunks_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  int sleepers_ = 0;
  std::exception_ptr worker_error_;  // the first exception a worker threw in the current job
  std::atomic<bool> stopping_{false};
  static thread_local bool in_parallel_;
};

thread_local bool Pool::in_parallel_ = false;

int default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

Pool& pool() {
  static Pool p(1);
  return p;
}

std::atomic<int> g_threads{0};
std::mutex g_resize;  // set_num_threads from several threads (the first parallel_for's default, too)

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = default_threads();
  if (n == g_threads.load()) return;
  // Inside a loop this thread may hold the pool (resize would wait for itself) or be a worker.
  QF_CHECK(!Pool::in_parallel(), "set_num_threads: called inside a parallel loop");
  std::lock_guard<std::mutex> lk(g_resize);
  if (n == g_threads.load()) return;
  pool().resize(n);
  g_threads.store(n);
  openblas_set_num_threads(1);  // see sgemm in core/blas.cpp
}

int num_threads() {
  if (g_threads.load() == 0) set_num_threads(0);  // two threads may both ask: the second finds it done
  return g_threads.load();
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  num_threads();  // the default size, on first use
  pool().run(n, grain, fn);
}

void parallel_pieces(int64_t n, int64_t piece, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t pieces = (n + piece - 1) / piece;
  const int threads = num_threads();
  if (pieces <= 1 || threads == 1) {
    fn(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(threads, pieces), 1, [&](int64_t, int64_t) {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < pieces;)
      fn(i * piece, std::min(n, (i + 1) * piece));
  });
}

int parts_for(int64_t units) {
  const int t = num_threads();
  return units >= 2 * t ? t : 1;
}

void run_parts(int parts, const std::function<void(int)>& f) {
  if (parts <= 1) return f(0);
  parallel_for(parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) f(static_cast<int>(j));
  });
}

}  // namespace qforge
