// Loader: turns a Dataset into a stream of float NCHW batches, decoded and
// transformed on background threads ahead of the consumer.
//
//   Loader loader(dataset, transform, {.batch_size = 128, .shuffle = true, .train = true,
//                                      .seed = 42, .workers = 2});
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     Batch b;
//     while (loader.next(b)) train_step(b.images.data(), b.labels.data(), b.n);
//   }
//
// Determinism, for exact resume: epoch e visits the dataset in
// epoch_permutation(size, seed, e) (identity without shuffle), cut into batches of
// batch_size, the last one short unless drop_last. Sample i's augmentation draws
// from std::mt19937(sample_seed(seed, e, i)). So a batch's bytes depend only on
// (seed, epoch, batch index), never on the number of workers or on timing, and
// start_epoch(e, k) resumes with exactly the batches k, k+1, ... an uninterrupted
// epoch would have given.
//
// A dataset of images of varying sizes (has_varying_size(spec())) needs a
// transform with a centre crop, which gives every image the same output shape.
//
// Threads: `workers` threads each build whole batches, at most `prefetch` batches
// ahead of the consumer; next() hands them out in order. An exception thrown while
// building a batch (say a corrupt image) is re-thrown by the next() that reaches
// that batch, and again by later calls until start_epoch. start_epoch and the
// destructor cancel the running epoch and join its threads. Call start_epoch and
// next from one thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"

namespace qforge::data {

struct LoaderOptions {
  int batch_size = 1;
  bool shuffle = false;
  bool train = false;  // augment (random crop, flip) when true
  bool drop_last = false;
  uint64_t seed = 0;
  int workers = 1;
  int prefetch = 4;  // batches built ahead of the consumer
  // Data-parallel runs: every rank walks the same batches (the same order, the same augmentation,
  // keyed by the image's index) and takes its share of each, samples [shard n / shards,
  // (shard + 1) n / shards) of a batch of n. One process: shard 0 of 1, the whole batch.
  int shard = 0, shards = 1;
};

struct Batch {
  std::vector<float> images;     // (n, c, h, w)
  std::vector<int32_t> labels;   // (n)
  std::vector<int64_t> indices;  // (n) dataset index of each image
  int n = 0, c = 0, h = 0, w = 0;
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, TransformConfig transform, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts (or restarts, cancelling the current one) epoch `epoch` at batch first_batch.
  void start_epoch(int epoch, size_t first_batch = 0);
  // Fills `out` with the next batch (reusing its buffers); false at the end of the epoch.
  bool next(Batch& out);

  size_t num_batches() const { return num_batches_; }
  ImageSpec output_spec() const { return out_spec_; }
  const Dataset& dataset() const { return *ds_; }

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
    bool ready = false;
  };
  void stop_workers();
  void worker();
  void build(size_t b, Batch& batch, std::vector<uint8_t>& scratch);

  std::shared_ptr<const Dataset> ds_;
  TransformConfig tf_;
  LoaderOptions opt_;
  ImageSpec in_spec_, out_spec_;
  size_t num_batches_ = 0;

  // Epoch state. next_claim_ and the slots' `ready` are guarded by mu_;
  // next_consume_ is written by the consumer under mu_.
  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  std::vector<Slot> slots_;
  std::vector<size_t> order_;
  int epoch_ = 0;
  size_t next_claim_ = 0, next_consume_ = 0;
  std::atomic<bool> stop_{false};
  bool started_ = false;
  std::exception_ptr failed_;
  std::vector<std::thread> threads_;
};

// The order epoch `epoch` visits a dataset of n images in, when shuffling:
// Fisher-Yates driven by std::mt19937_64, identical on every platform.
std::vector<size_t> epoch_permutation(size_t n, uint64_t seed, int epoch);

// Seed of the std::mt19937 that augments dataset image `index` in epoch `epoch`.
uint32_t sample_seed(uint64_t seed, int epoch, size_t index);

}  // namespace qforge::data
