// Write-to-a-temporary-then-rename, so a crash or an error never leaves a
// half-written file under the final name.
//
//   write_file_atomic(path, [&](std::FILE* f) { ... fwrite ... });
//   write_text_atomic(dir + "/config.json", cfg.j.dump(2) + "\n");
//
// or by hand: temp_path_for(path), write it, rename_into_place(tmp, path).
// A process killed mid-write leaves its temporary (path.tmp.<pid>.<n>) behind;
// remove_stale_temps(dir) deletes those of processes no longer running.
#pragma once
#include <cstdio>
#include <functional>
#include <string>

namespace qforge {

// Unique per process and call, in the target's directory (so the rename stays on one file system).
std::string temp_path_for(const std::string& path);

// Renames tmp onto path; on failure removes tmp and throws Error naming path.
void rename_into_place(const std::string& tmp, const std::string& path);

// Opens a temporary beside path, calls write(f), flushes, syncs and renames it
// into place. On any error (including one thrown by write, or a full disk) the
// temporary is removed, path is untouched, and the Error names path and the
// cause ("No space left on device", "File too large", ...). sync = false skips
// the fsync (thousands of small files, e.g. exported images, where a lost file
// after a power cut costs less than a sync each).
void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& write, bool sync = true);
void write_text_atomic(const std::string& path, const std::string& text);

// Creates dir and its parents, or throws Error naming dir and the cause (a
// read-only or full file system, a file in the way).
void make_directories(const std::string& dir);

// Removes dir's temporaries (name.tmp.<pid>.<n>) whose process is gone: what
// a kill -9 during a write leaves. Those of running processes stay. Returns
// how many were removed; errors are ignored (a leftover is only clutter).
int remove_stale_temps(const std::string& dir);

}  // namespace qforge
