// Helpers for end-to-end tests of the qforge binary: tiny generated data, a
// scratch directory, and running the CLI with its output captured.
#pragma once
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "data/idx.h"

namespace qforge::testing {

namespace fs = std::filesystem;

// The build's qforge binary and source tree (tests/CMakeLists.txt defines both).
inline std::string qforge_bin() { return QFORGE_BIN_PATH; }

inline std::string source_dir() { return QFORGE_SOURCE_DIR_PATH; }

// A committed config (configs/NAME), and Debian's Fashion-MNIST, which the recipe tests need.
inline std::string config_file(const std::string& name) { return source_dir() + "/configs/" + name; }
inline const std::string kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// In a forked child: becomes `qforge args...` (exit 127 when that fails).
[[noreturn]] inline void exec_qforge(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  const std::string bin = qforge_bin();
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv(bin.c_str(), argv.data());
  _exit(127);
}

struct RunResult {
  int code;
  std::string out;  // stdout and stderr
};

// Runs `launcher args` through the shell, with stdout and stderr captured.
inline RunResult run_qforge_with(const std::string& launcher, const std::string& args) {
  std::string cmd = launcher + " " + args + " 2>&1";
  std::FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// env: assignments for the command's environment, e.g. "QFORGE_ISA=avx2" (through the shell).
inline RunResult run_qforge(const std::string& args, const std::string& env = "") {
  return run_qforge_with((env.empty() ? "" : env + " ") + qforge_bin(), args);
}

struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("qforge_test_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// n images of size x size, 10 classes: class k has a bright 3x3 square at one
// of 10 places (plus noise), so a small CNN learns it within an epoch or two.
inline void write_tiny_idx(const std::string& images, const std::string& labels, int n, int size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> px(static_cast<size_t>(n) * size * size);
  std::vector<int> lab(n);
  for (int i = 0; i < n; ++i) {
    int k = i % 10;
    lab[i] = k;
    uint8_t* img = px.data() + static_cast<size_t>(i) * size * size;
    for (int j = 0; j < size * size; ++j) img[j] = static_cast<uint8_t>(rng() % 40);
    int oy = 1 + (k / 5) * (size / 2), ox = 1 + (k % 5) * ((size - 4) / 5);
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) img[(oy + a) * size + ox + b] = 255;
  }
  data::write_idx(images, labels, px, lab, size, size, true);
}

// A tiny config over generated data in dir; returns its path.
inline std::string write_tiny_config(const ScratchDir& dir, const std::string& extra_train = "") {
  write_tiny_idx(dir / "train-images.gz", dir / "train-labels.gz", 400, 12, 1);
  write_tiny_idx(dir / "test-images.gz", dir / "test-labels.gz", 100, 12, 2);
  std::string cfg = R"({
    "model": {"arch": "resnet18", "in_channels": 1, "num_classes": 10, "stem": "small", "width": 0.125},
    "data": {"train": {"images": ")" +
                    (dir / "train-images.gz") + R"(", "labels": ")" + (dir / "train-labels.gz") + R"("},
             "test": {"images": ")" +
                    (dir / "test-images.gz") + R"(", "labels": ")" + (dir / "test-labels.gz") + R"("},
             "mean": [0.2], "std": [0.3], "workers": 1},
    "train": {"epochs": 2, "batch_size": 20, "threads": 1, "seed": 3, "log_every": 10)" +
                    extra_train + R"(},
    "optim": {"lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 5e-4, "schedule": {"kind": "one_cycle"}},
    "output": {"dir": ")" +
                    (dir / "run") + R"("}
  })";
  std::ofstream(dir / "tiny.json") << cfg;
  return dir / "tiny.json";
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace qforge::testing
