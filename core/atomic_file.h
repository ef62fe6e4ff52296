// Write-to-a-temporary-then-rename, so a crash or an error never leaves a
// half-written file under the final name.
//
//   write_file_atomic(path, [&](std::FILE* f) { ... fwrite ... });
//
// or by hand: temp_path_for(path), write it, rename_into_place(tmp, path).
#pragma once
#include <cstdio>
#include <functional>
#include <string>

namespace qforge {

// Unique per process and call, in the target's directory (so the rename stays on one file system).
std::string temp_path_for(const std::string& path);

// Renames tmp onto path; on failure removes tmp and throws Error naming path.
void rename_into_place(const std::string& tmp, const std::string& path);

// Opens a temporary beside path, calls write(f), flushes and renames it into
// place. On any error (including one thrown by write) the temporary is removed
// and path is untouched.
void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& write);

}  // namespace qforge
