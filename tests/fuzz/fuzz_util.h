// Shared by the fuzz targets: a per-process scratch directory (in /dev/shm when there is one, so the
// loaders' file reads and the writers' fsyncs stay in memory), writing the input to a file there, and
// the rule every loader must keep: a bad input is a qforge::Error whose message names the file.
// Anything else (another exception, a crash, a sanitizer report) ends the process and so is found.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/error.h"

namespace qforge::fuzz {

inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                                           : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("qforge_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch(), ec);
    });
    return d;
  }();
  return dir;
}

inline std::string path_in_scratch(const std::string& name) { return (scratch() / name).string(); }

// Writes size bytes to name in the scratch directory (parents created) and returns its path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::filesystem::path p = scratch() / name;
  std::filesystem::create_directories(p.parent_path());
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(p.c_str());
    std::abort();
  }
  return p.string();
}

// A property of the library failed: report it the way a sanitizer would, so libFuzzer keeps the input.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

#define FUZZ_CHECK(cond, msg)                                                                      \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      ::qforge::fuzz::fail(std::string(#cond) + " (" + __FILE__ + ":" + std::to_string(__LINE__) + \
                           "): " + std::string(msg));                                              \
  } while (0)

// An Error from a loader must name the file it was reading (any of `names`).
inline void expect_names(const Error& e, std::initializer_list<std::string> names) {
  const std::string msg = e.what();
  for (const std::string& n : names)
    if (msg.find(n) != std::string::npos) return;
  fail("error does not name the file: " + msg);
}

}  // namespace qforge::fuzz
