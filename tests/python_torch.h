// Whether /usr/bin/python3 has Debian's python3-torch and python3-torchvision, which the scripts
// that write PyTorch fixtures at test time need (tests/nn/fixtures/make_torchvision_pth.py).
// Decided up front, from the installed files, so that doctest reports the cases as skipped
// (`* doctest::skip(!have_python_torch())`); a case that runs and finds the script unable to
// import them fails.
#pragma once
#include <filesystem>

namespace qforge::testing {

inline bool have_python_torch() {
  namespace fs = std::filesystem;
  const fs::path pkgs = "/usr/lib/python3/dist-packages";
  return fs::exists("/usr/bin/python3") && fs::exists(pkgs / "torch/__init__.py") &&
         fs::exists(pkgs / "torchvision/__init__.py");
}

}  // namespace qforge::testing
