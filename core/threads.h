// One thread pool for the whole process. Its size is set once from the config
// or the command line (set_num_threads). OpenBLAS itself is kept single-threaded
// and sgemm splits large products over this pool, so the cores are never
// oversubscribed.
#pragma once
#include <cstdint>
#include <functional>

namespace qforge {

// n <= 0 means all cores; OpenBLAS runs on these threads. Waits for a running
// parallel loop to finish; throws Error when called inside one (from its fn).
void set_num_threads(int n);
int num_threads();

// Calls fn(begin, end) on disjoint chunks covering [0, n), on the pool's threads
// (the caller works too). Chunks are at least `grain` long. Not reentrant: a
// parallel_for inside a parallel_for runs serially. Several threads may call it
// at once: the pool runs one caller's loop at a time, and a caller that finds it
// busy runs its own loop alone, fn(0, n) on its thread (so fn must not depend
// on how [0, n) is cut, which disjoint chunks never do).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Calls fn(begin, end) over [0, n) in pieces of `piece`, which the pool's
// threads take in turn from a shared counter: a thread that wakes late (an idle
// vCPU can take tens of microseconds) or is slowed by a neighbour leaves its
// share to the others instead of delaying the whole loop. On the calling thread
// alone when there is at most one piece.
void parallel_pieces(int64_t n, int64_t piece, const std::function<void(int64_t, int64_t)>& fn);

// Work in units (chunks of images) whose every step reads what the step before wrote: how many
// parts to run them in, each part's consecutive units through all their steps on one thread, its
// loops serial there. With two or more units per thread, one part per thread; otherwise 1 (the
// caller then splits each step over the threads, or, as Winograd's forward, a unit's rows). The two
// cores of a VM can sit on different dies, where a cache line written by one takes ~250 ns to reach
// the other (a ping-pong between the two took 510-580 ns on an AMD EPYC Zen 5): split step by step,
// most of each step's input was written by the other thread.
int parts_for(int64_t units);

// Part j's units of n in `parts` parts: [n j / parts, n (j + 1) / parts).
inline int64_t part_begin(int64_t n, int j, int parts) { return n * j / parts; }

// Calls f(j) for each part j < parts on the pool's threads (one part: on this thread, its loops
// split over the pool). Which thread runs which part does not matter to f.
void run_parts(int parts, const std::function<void(int)>& f);

}  // namespace qforge
