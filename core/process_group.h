// The processes of a data-parallel run. qforge launched by mpirun gets one (apps/mpi.cpp, Open MPI);
// a plain start has none, and every caller then does what one process does. core stays free of
// MPI: the ops that must see the global batch (BatchNorm's statistics, the observers' ranges) call
// this interface, and the runtime library (quant/capi) never links MPI.
//
//   if (ProcessGroup* g = process_group()) g->allreduce_sum(sums, 2 * C);
#pragma once
#include <cstdint>

namespace qforge {

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place, the same result on every rank; every rank calls them in the same order.
  virtual void allreduce_sum(double* v, int64_t n) = 0;
  virtual void allreduce_sum(int64_t* v, int64_t n) = 0;
  virtual void allreduce_min(float* v, int64_t n) = 0;
  virtual void allreduce_max(float* v, int64_t n) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // An in-place float sum that runs while the caller goes on (gradient buckets during backward);
  // progress() lets it advance, wait_all() ends every one started.
  virtual void start_allreduce_sum(float* v, int64_t n) = 0;
  virtual void progress() = 0;
  virtual void wait_all() = 0;
  // Seconds spent blocked in collectives since the last call (and resets the count).
  virtual double take_wait_seconds() = 0;

  // BatchNorm in training normalises with the statistics of the global batch (SyncBatchNorm);
  // train.sync_bn: false keeps each rank's own.
  bool sync_batch_norm = true;
};

// The group, or null when this is the only process (a group of size 1 counts as none).
ProcessGroup* process_group();
void set_process_group(ProcessGroup* g);

}  // namespace qforge
