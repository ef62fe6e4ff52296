// Data-parallel training over MPI: `mpirun -np N qforge train|qat CONFIG`.
//
// Every rank holds the whole model and walks the same batches (one shuffled order per epoch, the
// augmentation keyed by each image's index), taking its share of each global batch
// (train.batch_size). Its loss is weighted by its share, so the gradients summed over the ranks
// are those of the global batch, and BatchNorm (core/ops/batchnorm.h) and the QAT observers
// (quant/observer.cpp) reduce their statistics across ranks: N ranks compute what one process
// computes, up to the order of float sums. Rank 0 alone prints, logs and writes checkpoints.
// Without mpirun (or in a build without MPI) nothing here does anything.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/autograd.h"
#include "core/process_group.h"
#include "nn/module.h"

namespace qforge::optim {
class SGD;
}

namespace qforge::apps {

// Joins the MPI job when started by mpirun (Open MPI's or a PMI launcher's environment) and sets
// process_group(); other ranks' standard output then goes to /dev/null. The command (argv[1])
// must be train or qat when there are several ranks. A no-op for a plain start.
void start_distributed(int* argc, char*** argv);
// MPI_Finalize, when started.
void stop_distributed();
// After an error on this rank: stops every rank (MPI_Abort) so none waits forever. Returns when
// there is no MPI job.
void abort_distributed(int code);
// Whether this qforge was built with MPI.
bool built_with_mpi();

// Rank 0, or the only process: the one that prints and writes files.
bool is_rank0();

// Sums the parameters' gradients over the ranks in buckets of about bucket_floats values, in the
// reverse of registration order (the order backward completes them). A bucket is sent as soon as
// backward has completed every gradient in it (LeafGradHook), in bucket order, the same on every
// rank. One per training loop:
//   { auto hook = sync.hook(); loss.backward(); }  sync.finish();  opt.step();
class GradientSync {
 public:
  GradientSync(ProcessGroup& group, const nn::NamedTensors& params, int64_t bucket_floats = 1 << 20);
  // Installs the hook for one backward pass.
  std::unique_ptr<LeafGradHook> hook();
  // Sends the buckets not sent yet (gradients no backward reached count as zero), waits for all,
  // and writes the sums back into the gradients.
  void finish();

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<float> buf;
    size_t ready = 0;
  };
  void on_ready(AutogradMeta& m);
  void launch(size_t b);
  ProcessGroup& g_;
  std::vector<Tensor> params_;
  std::unordered_map<AutogradMeta*, size_t> index_;  // a gradient's parameter, by autograd identity
  std::vector<size_t> bucket_of_, offset_;
  std::vector<bool> done_;
  std::vector<Bucket> buckets_;
  size_t next_ = 0;  // the next bucket to send
};

// Rank 0's parameters, buffers and momentum buffers on every rank, in place.
void broadcast_model(ProcessGroup& g, nn::Module& model, optim::SGD* opt);

// A digest of the model's state, equal on every rank or an Error naming the first tensor that
// differs: the check that the ranks still hold one model.
void check_ranks_agree(ProcessGroup& g, nn::Module& model);

}  // namespace qforge::apps
