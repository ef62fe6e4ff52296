// The cases that check files written by PyTorch itself (tests/nn/fixtures/make_torchvision_pth.py,
// run at test time): they need /usr/bin/python3 with Debian's python3-torch and python3-torchvision.
// Decided up front, from the installed files, so that doctest reports the cases as skipped
// (`* doctest::skip(!run_torch_cases())`); a case that runs and finds the script failing fails.
// Release builds only: under the sanitizers the same parsers already run on the fuzz corpora and
// their mutants (ctest fuzz_*), while these cases import PyTorch and train for minutes there.
#pragma once
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace qforge::testing {

inline bool have_python_torch() {
  namespace fs = std::filesystem;
  const fs::path pkgs = "/usr/lib/python3/dist-packages";
  return fs::exists("/usr/bin/python3") && fs::exists(pkgs / "torch/__init__.py") &&
         fs::exists(pkgs / "torchvision/__init__.py");
}

inline bool run_torch_cases() {
#if defined(__SANITIZE_ADDRESS__)
  return false;
#else
  return have_python_torch();
#endif
}

// Writes `make_torchvision_pth.py DIR NAMES` (the script's usage) into dir; a failing run fails the
// case with the script's output.
inline void make_torchvision_pth(const std::string& dir, const std::string& names) {
  const std::string log = dir + ".pylog";
  const std::string cmd = "/usr/bin/python3 " QFORGE_TESTS_DIR "/nn/fixtures/make_torchvision_pth.py " + dir +
                          " " + names + " > " + log + " 2>&1";
  const int st = std::system(cmd.c_str());
  std::ostringstream out;
  out << std::ifstream(log).rdbuf();
  std::filesystem::remove(log);
  INFO(out.str());
  REQUIRE(st == 0);
}

}  // namespace qforge::testing
