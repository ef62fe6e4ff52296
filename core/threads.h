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

}  // namespace qforge
