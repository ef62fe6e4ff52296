#include "data/loader.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "core/error.h"

namespace qforge::data {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Distinct constants keep the permutation stream and the augmentation streams apart.
constexpr uint64_t kPermutationStream = 0x7065726d75746521ull;
constexpr uint64_t kSampleStream = 0x6175676d656e7421ull;

}  // namespace

std::vector<size_t> epoch_permutation(size_t n, uint64_t seed, int epoch) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  uint64_t s = splitmix64(splitmix64(seed ^ kPermutationStream) ^ static_cast<uint32_t>(epoch));
  std::mt19937_64 rng(s);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[uniform_below(rng, i)]);
  return order;
}

uint32_t sample_seed(uint64_t seed, int epoch, size_t index) {
  uint64_t h = splitmix64(seed ^ kSampleStream);
  h = splitmix64(h ^ static_cast<uint32_t>(epoch));
  h = splitmix64(h ^ static_cast<uint64_t>(index));
  return static_cast<uint32_t>(h >> 32);
}

Loader::Loader(std::shared_ptr<const Dataset> dataset, TransformConfig transform, LoaderOptions options)
    : ds_(std::move(dataset)), tf_(std::move(transform)), opt_(options) {
  QF_CHECK(ds_ != nullptr, "Loader: dataset is null");
  QF_CHECK(opt_.batch_size > 0, "Loader: batch_size must be > 0, got " + std::to_string(opt_.batch_size));
  QF_CHECK(opt_.workers > 0, "Loader: workers must be > 0, got " + std::to_string(opt_.workers));
  QF_CHECK(opt_.prefetch > 0, "Loader: prefetch must be > 0, got " + std::to_string(opt_.prefetch));
  QF_CHECK(opt_.shards > 0 && opt_.shard >= 0 && opt_.shard < opt_.shards,
           "Loader: shard " + std::to_string(opt_.shard) + " of " + std::to_string(opt_.shards));
  in_spec_ = ds_->spec();
  out_spec_ =
      has_varying_size(in_spec_) ? output_spec_any_size(tf_, in_spec_.channels) : data::output_spec(tf_, in_spec_);
  const size_t n = ds_->size(), bs = static_cast<size_t>(opt_.batch_size);
  num_batches_ = opt_.drop_last ? n / bs : (n + bs - 1) / bs;
  slots_.resize(static_cast<size_t>(opt_.prefetch));
}

Loader::~Loader() { stop_workers(); }

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Loader::start_epoch(int epoch, size_t first_batch) {
  QF_CHECK(first_batch <= num_batches_, "Loader::start_epoch: first batch " + std::to_string(first_batch) +
                                            " is past the epoch's " + std::to_string(num_batches_) + " batches");
  stop_workers();
  epoch_ = epoch;
  if (opt_.shuffle) {
    order_ = epoch_permutation(ds_->size(), opt_.seed, epoch);
  } else if (order_.size() != ds_->size()) {
    order_.resize(ds_->size());
    std::iota(order_.begin(), order_.end(), size_t{0});
  }
  for (auto& s : slots_) {
    s.ready = false;
    s.error = nullptr;
  }
  next_claim_ = next_consume_ = first_batch;
  failed_ = nullptr;
  stop_ = false;
  started_ = true;
  // Never more threads than batches left: a tiny eval set should not spawn a crowd.
  size_t n = std::min(static_cast<size_t>(opt_.workers), num_batches_ - first_batch);
  for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { worker(); });
}

void Loader::worker() {
  std::vector<uint8_t> scratch;
  const size_t P = slots_.size();
  for (;;) {
    size_t b;
    {
      std::unique_lock<std::mutex> lk(mu_);
      // Batch b reuses slot b % P, free once the consumer has taken batch b - P.
      work_cv_.wait(lk, [&] { return stop_ || next_claim_ >= num_batches_ || next_claim_ < next_consume_ + P; });
      if (stop_ || next_claim_ >= num_batches_) return;
      b = next_claim_++;
    }
    Slot& slot = slots_[b % P];
    try {
      build(b, slot.batch, scratch);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      slot.ready = true;
    }
    ready_cv_.notify_all();
  }
}

void Loader::build(size_t b, Batch& batch, std::vector<uint8_t>& scratch) {
  const size_t bs = static_cast<size_t>(opt_.batch_size);
  const size_t first = b * bs, whole = std::min(bs, order_.size() - first);
  const size_t shards = static_cast<size_t>(opt_.shards), shard = static_cast<size_t>(opt_.shard);
  const size_t begin = first + shard * whole / shards, n = first + (shard + 1) * whole / shards - begin;
  const size_t per = image_bytes(out_spec_);
  batch.n = static_cast<int>(n);
  batch.c = out_spec_.channels;
  batch.h = out_spec_.height;
  batch.w = out_spec_.width;
  batch.images.resize(n * per);
  batch.labels.resize(n);
  batch.indices.resize(n);
  std::mt19937 rng;
  for (size_t k = 0; k < n; ++k) {
    if (stop_.load(std::memory_order_relaxed)) return;  // cancelled: the batch is discarded
    const size_t idx = order_[begin + k];
    const ImageSpec in = ds_->get_sized(idx, scratch);
    if (opt_.train) rng.seed(sample_seed(opt_.seed, epoch_, idx));
    try {
      apply_transform(tf_, scratch.data(), in, batch.images.data() + k * per, out_spec_, rng, opt_.train);
    } catch (const Error& e) {
      throw Error(ds_->describe(idx) + ": " + e.what());  // an image of its own size may not fit the crop
    }
    batch.labels[k] = ds_->label(idx);
    batch.indices[k] = static_cast<int64_t>(idx);
  }
}

bool Loader::next(Batch& out) {
  QF_CHECK(started_, "Loader::next: call start_epoch first");
  if (failed_) std::rethrow_exception(failed_);
  if (next_consume_ >= num_batches_) return false;
  Slot& slot = slots_[next_consume_ % slots_.size()];
  {
    std::unique_lock<std::mutex> lk(mu_);
    ready_cv_.wait(lk, [&] { return slot.ready; });
  }
  if (slot.error) {
    failed_ = slot.error;
    stop_workers();
    std::rethrow_exception(failed_);
  }
  // No worker touches this slot until next_consume_ moves past it, so swap unlocked.
  std::swap(out, slot.batch);
  {
    std::lock_guard<std::mutex> lk(mu_);
    slot.ready = false;
    ++next_consume_;
  }
  work_cv_.notify_all();
  return true;
}

}  // namespace qforge::data
