// Data-parallel training (apps/distributed.h): `mpirun -np 2 qforge train|qat` against one process
// at the same global batch. Run by ctest `mpi` (Release builds with MPI; tests/CMakeLists.txt).
//
// Tolerance. The two runs do the same arithmetic but for the order of float sums: a weight
// gradient summed over the batch in one GEMM, or as two half-batch sums added by the allreduce;
// BatchNorm's sums added in another order. Training this tiny network amplifies such last-bit
// differences quickly (at lr 0.01 about tenfold a step, as one process with QFORGE_WINOGRAD=off
// shows too), so the runs here take 20 steps at a small constant learning rate (1e-4), where the
// weights of two ranks stay within 3e-5 of one process's (relative to the largest weight; measured
// on this data, AMD EPYC Zen 5) and per-rank BatchNorm statistics (train.sync_bn=false, not one
// model) differ by 7e-2. The bound, 1e-3, sits between the two; printed running losses (4
// decimals) within 2e-4.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "apps/checkpoint.h"
#include "cli_util.h"

using namespace qforge;
using namespace qforge::testing;

namespace {

bool have_mpi() {
#ifdef QFORGE_TEST_MPI
  return std::system("command -v mpirun > /dev/null 2>&1") == 0;
#else
  return false;
#endif
}

// Started as root in CI containers: Open MPI refuses that unless told.
RunResult run_mpi(int n, const std::string& args) {
  return run_qforge_with("mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(n) + " " + qforge_bin(),
                         args);
}

// The running mean losses printed after each step (train.log_every=1), in order: the number after
// "STEP/STEPS  loss ".
std::vector<double> step_losses(const std::string& out) {
  std::vector<double> v;
  const std::string key = "  loss ";
  for (size_t at = out.find(key); at != std::string::npos; at = out.find(key, at + 1)) {
    size_t i = at;
    auto digits = [&] {
      const size_t end = i;
      while (i > 0 && std::isdigit(static_cast<unsigned char>(out[i - 1]))) --i;
      return i < end;
    };
    if (digits() && i > 0 && out[i - 1] == '/' && (--i, digits())) v.push_back(std::stod(out.substr(at + key.size())));
  }
  return v;
}

// The largest difference between two checkpoints' tensors, over the largest magnitude in a.
double max_rel_diff(const std::string& a, const std::string& b, const std::string& only = "") {
  auto sa = apps::load_checkpoint(a).model_state(), sb = apps::load_checkpoint(b).model_state();
  REQUIRE(sa.size() == sb.size());
  double diff = 0, mag = 0;
  for (auto& [name, ta] : sa) {
    if (!only.empty() && name.find(only) == std::string::npos) continue;
    const Tensor& tb = sb.at(name);
    REQUIRE(ta.numel() == tb.numel());
    for (int64_t i = 0; i < ta.numel(); ++i) {
      diff = std::max(diff, static_cast<double>(std::abs(ta.data()[i] - tb.data()[i])));
      mag = std::max(mag, static_cast<double>(std::abs(ta.data()[i])));
    }
  }
  return diff / std::max(mag, 1e-30);
}

void check_same_losses(const RunResult& one, const RunResult& two, size_t steps) {
  auto a = step_losses(one.out), b = step_losses(two.out);
  REQUIRE(a.size() >= steps);
  REQUIRE(b.size() == a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(a[i] - b[i]) <= 2e-4);
  }
}

// `qforge CMD` in one process into dir/one and in 2 ranks into dir/two: both succeed, and their
// printed running losses agree step by step over at least `steps` steps.
struct OneAndTwo {
  RunResult one, two;
};
OneAndTwo one_and_two(const std::string& cmd, const ScratchDir& dir, size_t steps) {
  OneAndTwo r{run_qforge(cmd + " --set output.dir=" + (dir / "one")), run_mpi(2, cmd + " --set output.dir=" + (dir / "two"))};
  INFO(r.one.out);
  INFO(r.two.out);
  REQUIRE(r.one.code == 0);
  REQUIRE(r.two.code == 0);
  check_same_losses(r.one, r.two, steps);
  return r;
}

const std::string kAugment = " --set data.random_crop_padding=2 --set data.random_hflip=true --set train.log_every=1";
const std::string kSlow = " --set optim.schedule.kind=constant --set optim.lr=0.0001";
constexpr double kBound = 1e-3;

}  // namespace

TEST_CASE("mpi: 2 ranks train as one process at the same global batch, resume with either number" *
          doctest::skip(!have_mpi())) {
  ScratchDir d("mpi_train");
  // 21 a batch: shares of 10 and 11, so the weighting by share is exercised too.
  const std::string cfg = write_tiny_config(d) + kAugment + kSlow + " --set train.batch_size=21";
  auto [one, two] = one_and_two("train " + cfg + " --max-steps 20", d, 20);
  INFO(two.out);
  CHECK(two.out.find("data-parallel: 2 ranks, global batch 21") != std::string::npos);
  CHECK(two.out.find("(2 ranks: ") != std::string::npos);  // the stop line's throughput and wait share
  CHECK(max_rel_diff(d / "one/last.safetensors", d / "two/last.safetensors") < kBound);
  // The reductions run in a fixed order: the same run again gives the same bytes.
  REQUIRE(run_mpi(2, "train " + cfg + " --max-steps 20 --set output.dir=" + (d / "again")).code == 0);
  CHECK(max_rel_diff(d / "two/last.safetensors", d / "again/last.safetensors") == 0);

  // Started in one process, resumed in two, and the other way round: the same model again.
  REQUIRE(run_qforge("train " + cfg + " --max-steps 10 --set output.dir=" + (d / "a")).code == 0);
  RunResult a2 = run_mpi(2, "train " + cfg + " --max-steps 10 --resume --set output.dir=" + (d / "a"));
  INFO(a2.out);
  REQUIRE(a2.code == 0);
  CHECK(a2.out.find("resuming from") != std::string::npos);
  CHECK(max_rel_diff(d / "one/last.safetensors", d / "a/last.safetensors") < kBound);
  REQUIRE(run_mpi(2, "train " + cfg + " --max-steps 10 --set output.dir=" + (d / "b")).code == 0);
  RunResult b2 = run_qforge("train " + cfg + " --max-steps 10 --resume --set output.dir=" + (d / "b"));
  INFO(b2.out);
  REQUIRE(b2.code == 0);
  CHECK(max_rel_diff(d / "one/last.safetensors", d / "b/last.safetensors") < kBound);

  // The bound can fail: each rank's own BatchNorm statistics are another function.
  RunResult local = run_mpi(2, "train " + cfg + " --max-steps 20 --set train.sync_bn=false --set output.dir=" +
                                   (d / "local"));
  INFO(local.out);
  REQUIRE(local.code == 0);
  CHECK(max_rel_diff(d / "one/last.safetensors", d / "local/last.safetensors") > kBound);
}

TEST_CASE("mpi: QAT in 2 ranks: observers see the global batch, the scales match one process" *
          doctest::skip(!have_mpi())) {
  ScratchDir d("mpi_qat");
  const std::string cfg = write_tiny_config(d) + kAugment;
  REQUIRE(run_qforge("train " + cfg + " --set train.epochs=1").code == 0);
  const std::string q = cfg + kSlow + " --set model.init_from=" + (d / "run/last.safetensors") +
                        " --set train.epochs=1 --set quant.activation.observer=moving_average_minmax";
  auto [one, two] = one_and_two("qat " + q, d, 20);
  INFO(two.out);
  CHECK(two.out.find("(2 ranks: ") != std::string::npos);  // the epoch line's throughput and wait share
  // Every rank held the same scales at the epoch's end (the run checks it, or fails), and they are
  // one process's: the observers' ranges, the fake-quant scales and zero points.
  CHECK(max_rel_diff(d / "one/last.safetensors", d / "two/last.safetensors") < kBound);
  CHECK(max_rel_diff(d / "one/last.safetensors", d / "two/last.safetensors", "activation_post_process") < kBound);
  CHECK(two.out.find("top-1 agreement") != std::string::npos);  // rank 0 converted and checked the int8 graph
  CHECK(fs::exists(d / "two/model.qfm"));

  // A histogram observer would see one rank's data: refused, and every rank stops.
  RunResult hist = run_mpi(2, "qat " + q + " --set quant.activation.observer=histogram --set output.dir=" + (d / "hist"));
  CHECK(hist.code != 0);
  CHECK(hist.out.find("histogram of one process's data") != std::string::npos);
}

TEST_CASE("mpi: an error on the ranks stops them all, named" * doctest::skip(!have_mpi())) {
  ScratchDir d("mpi_err");
  const std::string cfg = write_tiny_config(d);
  RunResult nan = run_mpi(2, "train " + cfg + " --set optim.lr=1e30 --set output.dir=" + (d / "nan"));
  CHECK(nan.code != 0);
  CHECK(nan.out.find("loss is") != std::string::npos);
  RunResult small = run_mpi(2, "train " + cfg + " --set train.batch_size=1 --set output.dir=" + (d / "small"));
  CHECK(small.code != 0);
  CHECK(small.out.find("smaller than the 2 ranks") != std::string::npos);
  CHECK(run_qforge("info --system").out.find("data-parallel (mpirun -np N qforge train|qat): built with MPI") !=
        std::string::npos);
  RunResult eval = run_mpi(2, "eval --model " + (d / "x.safetensors"));
  CHECK(eval.code != 0);
  CHECK(eval.out.find("only train and qat run across processes") != std::string::npos);
}
