// Full disks and unwritable directories: every writer (checkpoints through `qforge train`, .qfm
// models, `qforge export`, `qforge data export-images`, IDX files) fails with an Error naming the
// file and the cause, leaves the previous file as it was, and leaves no temporary behind.
//
// Two ways to fill a disk: a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so write() fails
// with EFBIG: "File too large"), always available; and, when the test may mount (root), a 16 MB
// tmpfs filled up to a few bytes ("No space left on device"). A read-only directory: a read-only
// tmpfs as root, a mode-555 directory otherwise.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "cli_util.h"
#include "core/error.h"
#include "data/export.h"
#include "data/idx.h"
#include "quant/graph.h"

using namespace qforge;
using namespace qforge::testing;

namespace {

const std::string kFixtureQfm = std::string(QFORGE_TESTS_DIR) + "/quant/fixtures/tiny_resnet18_v1.qfm";

// qforge with args and, when limit > 0, a file-size limit of that many bytes; its output and exit code.
RunResult run_limited(const std::vector<std::string>& args, rlim_t limit) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    if (limit > 0) {
      signal(SIGXFSZ, SIG_IGN);  // inherited across exec: write() then fails with EFBIG
      rlimit r{limit, limit};
      setrlimit(RLIMIT_FSIZE, &r);
    }
    exec_qforge(args);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// This process's file-size limit, for the in-process writers; restored on destruction.
struct FsizeLimit {
  rlimit old{};
  void (*old_handler)(int);
  explicit FsizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old);
    old_handler = signal(SIGXFSZ, SIG_IGN);
    rlimit r{bytes, old.rlim_max};
    REQUIRE(setrlimit(RLIMIT_FSIZE, &r) == 0);
  }
  ~FsizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
  }
};

// A tmpfs mounted at `dir` (root only); unmounted on destruction.
struct Tmpfs {
  std::string dir;
  bool mounted = false;
  Tmpfs(const std::string& d, const std::string& opts) : dir(d) {
    fs::create_directories(dir);
    mounted = geteuid() == 0 && mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~Tmpfs() {
    if (mounted) umount2(dir.c_str(), MNT_DETACH);
  }
  // Takes all but `leave` bytes of the free space.
  void fill_leaving(uint64_t leave) {
    struct statvfs s {};
    REQUIRE(statvfs(dir.c_str(), &s) == 0);
    const uint64_t avail = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
    REQUIRE(avail > leave);
    const int fd = ::open((dir + "/filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(posix_fallocate(fd, 0, static_cast<off_t>(avail - leave)) == 0);
    close(fd);
  }
  void unfill() { fs::remove(dir + "/filler"); }
};

// How a test fills the disk: a file-size limit, or a tmpfs with little space left.
struct Full {
  std::string name, cause;
  std::optional<Tmpfs>* fs;  // the tmpfs variant's mount, else null
};

std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> r;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) r.push_back(e.path().string());
  return r;
}

// Reads every regular file under dir: path -> bytes.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> m;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != "filler") m[e.path().string()] = read_file(e.path().string());
  return m;
}

}  // namespace

TEST_CASE("full disk: checkpoints, .qfm, export and export-images fail by name and keep the previous file") {
  ScratchDir d("fulldisk");
  const std::string cfg = write_tiny_config(d);
  std::optional<Tmpfs> tmpfs;
  tmpfs.emplace(d / "tmpfs", "size=16m");
  std::vector<Full> modes = {{"file-size limit", "File too large", nullptr}};
  if (tmpfs->mounted)
    modes.push_back({"full tmpfs", "No space left on device", &tmpfs});
  else
    MESSAGE("full disk: no tmpfs (not root, or mount refused): file-size limit only");

  for (const Full& mode : modes) {
    CAPTURE(mode.name);
    const bool on_tmpfs = mode.fs != nullptr;
    const std::string root = on_tmpfs ? tmpfs->dir + "/w" : d / "w";
    fs::remove_all(root);
    fs::create_directories(root);
    // Run a command (or code) with the disk full but for `room` bytes.
    auto full_run = [&](const std::vector<std::string>& args, uint64_t room) {
      if (on_tmpfs) tmpfs->fill_leaving(room);
      RunResult r = run_limited(args, on_tmpfs ? 0 : static_cast<rlim_t>(room));
      if (on_tmpfs) tmpfs->unfill();
      return r;
    };
    auto full_call = [&](uint64_t room, auto&& fn) {
      std::string msg;
      if (on_tmpfs) tmpfs->fill_leaving(room);
      try {
        if (on_tmpfs) {
          fn();
        } else {
          FsizeLimit lim(room);
          fn();
        }
      } catch (const Error& e) {
        msg = e.what();
      }
      if (on_tmpfs) tmpfs->unfill();
      return msg;
    };

    // Checkpoints: a finished epoch, then the next one on a disk with room for half a checkpoint.
    const std::string run_dir = root + "/run";
    REQUIRE(run_limited({"train", cfg, "--set", "train.epochs=1", "--set", "output.dir=" + run_dir}, 0).code == 0);
    const auto before = snapshot(run_dir);
    const uint64_t ckpt = fs::file_size(run_dir + "/last.safetensors");
    RunResult t =
        full_run({"train", cfg, "--resume", "--set", "train.epochs=2", "--set", "output.dir=" + run_dir}, ckpt / 2);
    INFO(t.out);
    CHECK(t.code == 1);
    // best is written before last, when the epoch is the best so far.
    const bool names_ckpt =
        t.out.find(run_dir + "/last.safetensors: write failed: " + mode.cause) != std::string::npos ||
        t.out.find(run_dir + "/best.safetensors: write failed: " + mode.cause) != std::string::npos;
    CHECK_MESSAGE(names_ckpt, t.out);
    auto after = snapshot(run_dir);
    CHECK(after[run_dir + "/last.safetensors"] == before.at(run_dir + "/last.safetensors"));
    CHECK(after[run_dir + "/best.safetensors"] == before.at(run_dir + "/best.safetensors"));
    CHECK(temporaries(root).empty());
    // And the run resumes from there once there is room: epoch 2 logged once.
    RunResult t2 =
        run_limited({"train", cfg, "--resume", "--set", "train.epochs=2", "--set", "output.dir=" + run_dir}, 0);
    CHECK(t2.code == 0);
    const std::string metrics = read_file(run_dir + "/metrics.jsonl");
    CHECK(std::count(metrics.begin(), metrics.end(), '\n') == 2);

    // An int8 model saved over a previous one.
    const std::string qfm = root + "/model.qfm";
    fs::copy_file(kFixtureQfm, qfm);
    const quant::Int8Graph g = quant::load_int8_model(kFixtureQfm);
    const std::string msg = full_call(4096, [&] { quant::save_int8_model(qfm, g); });
    CHECK(msg == qfm + ": write failed: " + mode.cause);
    CHECK(read_file(qfm) == read_file(kFixtureQfm));
    CHECK(temporaries(root).empty());

    // qforge export over a previous export.
    const std::string exp = root + "/export";
    REQUIRE(run_limited({"export", "--model", kFixtureQfm, "--out", exp}, 0).code == 0);
    const auto exp_before = snapshot(exp);
    RunResult x = full_run({"export", "--model", kFixtureQfm, "--out", exp}, 4096);
    CHECK(x.code == 1);
    CHECK_MESSAGE(x.out.find(exp + "/weights.safetensors: write failed: " + mode.cause) != std::string::npos, x.out);
    CHECK(snapshot(exp) == exp_before);
    CHECK(temporaries(root).empty());

    // export-images over a previous export (each PNG is about 200 bytes).
    const std::string png = root + "/png";
    const std::vector<std::string> ex = {"data",     "export-images",      "--images", d / "test-images.gz",
                                         "--labels", d / "test-labels.gz", "--out",    png};
    REQUIRE(run_limited(ex, 0).code == 0);
    const auto png_before = snapshot(png);
    RunResult p = full_run(ex, 64);
    CHECK(p.code == 1);
    CHECK_MESSAGE(p.out.find(".png: write failed: " + mode.cause) != std::string::npos, p.out);
    CHECK(snapshot(png) == png_before);
    CHECK(temporaries(root).empty());

    // IDX files.
    const std::string im = root + "/im.gz", lb = root + "/lb.gz";
    std::vector<uint8_t> px(200 * 28 * 28, 7);
    std::vector<int> labels(200, 3);
    data::write_idx(im, lb, px, labels, 28, 28, false);
    const std::string idx_before = read_file(im);
    std::fill(px.begin(), px.end(), 9);
    const std::string idx_msg = full_call(1000, [&] { data::write_idx(im, lb, px, labels, 28, 28, false); });
    CHECK(idx_msg.find(im + ": write error: " + mode.cause) == 0);
    CHECK(read_file(im) == idx_before);
    CHECK(temporaries(root).empty());
  }
}

TEST_CASE("unwritable output directory: the error names it, nothing half-written") {
  ScratchDir d("readonly");
  const std::string cfg = write_tiny_config(d);
  const std::string ro = d / "ro";
  std::optional<Tmpfs> tmpfs;
  tmpfs.emplace(ro, "size=1m,ro");
  if (!tmpfs->mounted) {
    if (geteuid() == 0) {
      MESSAGE("unwritable directory: root and no read-only mount: skipped");
      return;
    }
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  }
  RunResult t = run_limited({"train", cfg, "--set", "output.dir=" + ro + "/run"}, 0);
  INFO(t.out);
  CHECK(t.code == 1);
  CHECK(t.out.find("qforge: error: " + ro + "/run: cannot create directory: ") != std::string::npos);
  RunResult x = run_limited({"export", "--model", kFixtureQfm, "--out", ro}, 0);
  INFO(x.out);
  CHECK(x.code == 1);
  CHECK(x.out.find("qforge: error: " + ro + "/weights.safetensors: cannot create file: ") != std::string::npos);
  if (!tmpfs->mounted) fs::permissions(ro, fs::perms::owner_all);
}
