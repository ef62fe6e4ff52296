// Internal to data/: the write-to-a-temporary-then-rename pattern, so a crash or
// an error never leaves a half-written file under the final name.
//
//   std::string tmp = temp_path_for(path);
//   ... write tmp (remove it on failure) ...
//   rename_into_place(tmp, path);
#pragma once
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include "core/error.h"

namespace qforge::data {

// Unique per process and call, so concurrent writers never share a temporary;
// same directory as the target, so the rename stays on one file system.
inline std::string temp_path_for(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

inline void rename_into_place(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename temporary file into place: " + std::strerror(err));
  }
}

}  // namespace qforge::data
