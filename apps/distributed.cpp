#include "apps/distributed.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <unordered_map>

#include "core/error.h"
#include "core/options.h"
#include "optim/sgd.h"

#ifdef QFORGE_WITH_MPI
#include <mpi.h>
#endif

namespace qforge::apps {
namespace {

// The launcher's world size when mpirun (Open MPI) or a PMI launcher started this process, else 0.
int launcher_world_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* s = process_env(v)) return std::atoi(s);
  return 0;
}

#ifdef QFORGE_WITH_MPI
bool g_started = false;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

class MpiGroup final : public ProcessGroup {
 public:
  MpiGroup() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(double* v, int64_t n) override { reduce(v, n, MPI_DOUBLE, MPI_SUM, sizeof(double)); }
  void allreduce_sum(int64_t* v, int64_t n) override { reduce(v, n, MPI_INT64_T, MPI_SUM, sizeof(int64_t)); }
  void allreduce_min(float* v, int64_t n) override { reduce(v, n, MPI_FLOAT, MPI_MIN, sizeof(float)); }
  void allreduce_max(float* v, int64_t n) override { reduce(v, n, MPI_FLOAT, MPI_MAX, sizeof(float)); }
  void broadcast(void* data, int64_t bytes, int root) override {
    const double t0 = now();
    for (int64_t at = 0; at < bytes; at += INT_MAX)
      MPI_Bcast(static_cast<char*>(data) + at, static_cast<int>(std::min<int64_t>(INT_MAX, bytes - at)), MPI_BYTE,
                root, MPI_COMM_WORLD);
    wait_ += now() - t0;
  }
  void start_allreduce_sum(float* v, int64_t n) override {
    for (int64_t at = 0; at < n; at += INT_MAX) {
      pending_.emplace_back();
      MPI_Iallreduce(MPI_IN_PLACE, v + at, static_cast<int>(std::min<int64_t>(INT_MAX, n - at)), MPI_FLOAT, MPI_SUM,
                     MPI_COMM_WORLD, &pending_.back());
    }
  }
  void progress() override {
    if (pending_.empty()) return;
    int flag = 0;
    MPI_Testall(static_cast<int>(pending_.size()), pending_.data(), &flag, MPI_STATUSES_IGNORE);
  }
  void wait_all() override {
    const double t0 = now();
    MPI_Waitall(static_cast<int>(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE);
    pending_.clear();
    wait_ += now() - t0;
  }
  double take_wait_seconds() override {
    const double w = wait_;
    wait_ = 0;
    return w;
  }

 private:
  void reduce(void* v, int64_t n, MPI_Datatype type, MPI_Op op, size_t elem) {
    const double t0 = now();
    for (int64_t at = 0; at < n; at += INT_MAX)
      MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(v) + at * elem, static_cast<int>(std::min<int64_t>(INT_MAX, n - at)),
                    type, op, MPI_COMM_WORLD);
    wait_ += now() - t0;
  }
  int rank_ = 0, size_ = 1;
  std::vector<MPI_Request> pending_;
  double wait_ = 0;
};
#endif

uint64_t fnv1a(const void* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace

bool built_with_mpi() {
#ifdef QFORGE_WITH_MPI
  return true;
#else
  return false;
#endif
}

void start_distributed(int* argc, char*** argv) {
  const int world = launcher_world_size();
  if (world == 0) return;
#ifndef QFORGE_WITH_MPI
  (void)argc, (void)argv;
  QF_CHECK(world == 1, "started by mpirun with " + std::to_string(world) +
                           " processes, but this qforge was built without MPI: install libopenmpi-dev and "
                           "openmpi-bin, then rebuild (scripts/setup.sh)");
#else
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);  // only the main thread calls MPI
  g_started = true;
  static MpiGroup group;
  set_process_group(&group);
  if (group.size() == 1) return;
  std::string cmd;
  for (int i = 1; i < *argc; ++i)
    if ((*argv)[i][0] != '-') {
      cmd = (*argv)[i];
      break;
    }
  QF_CHECK(cmd == "train" || cmd == "qat", "under mpirun, only train and qat run across processes; run qforge " +
                                               (cmd.empty() ? std::string("this command") : cmd) +
                                               " as one process");
  if (group.rank() != 0) {
    std::fflush(stdout);
    if (!std::freopen("/dev/null", "w", stdout)) throw Error("rank " + std::to_string(group.rank()) +
                                                             ": cannot send standard output to /dev/null");
  }
#endif
}

void stop_distributed() {
#ifdef QFORGE_WITH_MPI
  if (!g_started) return;
  set_process_group(nullptr);
  MPI_Finalize();
  g_started = false;
#endif
}

void abort_distributed(int code) {
#ifdef QFORGE_WITH_MPI
  if (g_started) {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
  }
#else
  (void)code;
#endif
}

bool is_rank0() {
  ProcessGroup* g = process_group();
  return !g || g->rank() == 0;
}

GradientSync::GradientSync(ProcessGroup& group, const nn::NamedTensors& params, int64_t bucket_floats) : g_(group) {
  for (auto it = params.rbegin(); it != params.rend(); ++it)
    if (it->second.requires_grad()) params_.push_back(it->second);
  bucket_of_.resize(params_.size());
  offset_.resize(params_.size());
  done_.assign(params_.size(), false);
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t n = params_[i].numel();
    if (buckets_.empty() || (!buckets_.back().buf.empty() &&
                             static_cast<int64_t>(buckets_.back().buf.size()) + n > bucket_floats))
      buckets_.emplace_back();
    Bucket& b = buckets_.back();
    bucket_of_[i] = buckets_.size() - 1;
    offset_[i] = b.buf.size();
    b.params.push_back(i);
    b.buf.resize(b.buf.size() + static_cast<size_t>(n));
    index_[params_[i].impl()->autograd.get()] = i;  // a tensor's autograd identity lives as long as it
  }
}

std::unique_ptr<LeafGradHook> GradientSync::hook() {
  return std::make_unique<LeafGradHook>([this](AutogradMeta& m) {
    auto it = index_.find(&m);
    if (it == index_.end() || done_[it->second]) return;
    done_[it->second] = true;
    Bucket& b = buckets_[bucket_of_[it->second]];
    if (++b.ready == b.params.size())
      while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params.size()) launch(next_++);
    g_.progress();
  });
}

void GradientSync::launch(size_t bi) {
  Bucket& b = buckets_[bi];
  for (size_t i : b.params) {
    float* dst = b.buf.data() + offset_[i];
    const auto& grad = params_[i].impl()->autograd->grad;
    if (grad)
      std::memcpy(dst, params_[i].impl()->autograd->grad_data(), sizeof(float) * params_[i].numel());
    else
      std::fill(dst, dst + params_[i].numel(), 0.f);
  }
  g_.start_allreduce_sum(b.buf.data(), static_cast<int64_t>(b.buf.size()));
}

void GradientSync::finish() {
  while (next_ < buckets_.size()) launch(next_++);
  g_.wait_all();
  for (Bucket& b : buckets_) {
    for (size_t i : b.params) {
      // A parameter no backward reached keeps no gradient, as in one process (SGD skips it).
      if (!params_[i].impl()->autograd->grad) continue;
      std::memcpy(params_[i].impl()->autograd->grad_data(), b.buf.data() + offset_[i],
                  sizeof(float) * params_[i].numel());
    }
    b.ready = 0;
  }
  std::fill(done_.begin(), done_.end(), false);
  next_ = 0;
}

void broadcast_model(ProcessGroup& g, nn::Module& model, optim::SGD* opt) {
  for (auto& [name, t] : model.state_dict()) g.broadcast(t.data(), t.numel() * static_cast<int64_t>(sizeof(float)), 0);
  if (!opt) return;
  // Momentum buffers exist after a first step (a resumed run): rank 0 says which, then sends them.
  const std::map<std::string, Tensor> mine = [&] {
    std::map<std::string, Tensor> m;
    for (auto& [name, t] : opt->state()) m.emplace(name, t);
    return m;
  }();
  std::map<std::string, Tensor> got;
  for (auto& [pname, p] : model.named_parameters()) {
    const std::string name = "momentum_buffer." + pname;  // SGD::state()'s names
    auto it = mine.find(name);
    int64_t have = it != mine.end() ? 1 : 0;
    g.broadcast(&have, sizeof have, 0);
    if (!have) continue;
    Tensor buf = it != mine.end() ? it->second : Tensor::zeros(p.shape());
    QF_CHECK(buf.numel() == p.numel(), "broadcast_model: momentum buffer of '" + name + "' has " +
                                           std::to_string(buf.numel()) + " values for " +
                                           std::to_string(p.numel()));
    g.broadcast(buf.data(), buf.numel() * static_cast<int64_t>(sizeof(float)), 0);
    got.emplace(name, buf);
  }
  if (g.rank() != 0 && !got.empty()) opt->load_state(got, "rank 0");
}

void check_ranks_agree(ProcessGroup& g, nn::Module& model) {
  const nn::NamedTensors st = model.state_dict();
  std::vector<uint64_t> mine(st.size()), root(st.size());
  for (size_t i = 0; i < st.size(); ++i) mine[i] = fnv1a(st[i].second.data(), sizeof(float) * st[i].second.numel());
  root = mine;
  g.broadcast(root.data(), static_cast<int64_t>(root.size() * sizeof(uint64_t)), 0);
  std::vector<int64_t> differs(st.size());
  for (size_t i = 0; i < st.size(); ++i) differs[i] = mine[i] != root[i];
  g.allreduce_sum(differs.data(), static_cast<int64_t>(differs.size()));
  for (size_t i = 0; i < st.size(); ++i)
    if (differs[i])
      throw Error("data-parallel run: '" + st[i].first + "' differs between rank 0 and " + std::to_string(differs[i]) +
                  " other rank(s); the ranks no longer hold one model");
}

}  // namespace qforge::apps
