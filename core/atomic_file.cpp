#include "core/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace qforge {

std::string temp_path_for(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

void rename_into_place(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename temporary file into place: " + std::strerror(err));
  }
}

void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& write, bool sync) {
  std::string tmp = temp_path_for(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(path + ": cannot create file: " + std::strerror(errno));
  // The writers leave fwrite's results unchecked: a failed write sets the stream's error flag and
  // errno, read right after write() returns (a later fflush may fail with nothing left to say).
  auto fail = [&](const char* what, int err) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw Error(path + ": " + what + ": " + std::strerror(err));
  };
  errno = 0;
  try {
    write(f);
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  const int err = errno;
  if (std::ferror(f)) fail("write failed", err ? err : EIO);
  if (std::fflush(f) != 0) fail("write failed", errno);
  // Data reach the disk before the rename makes them the file; on NFS a full disk shows only here.
  if (sync && ::fsync(::fileno(f)) != 0) fail("write failed (fsync)", errno);
  if (std::fclose(f) != 0) {
    const int close_err = errno;
    std::remove(tmp.c_str());
    throw Error(path + ": write failed: " + std::strerror(close_err));
  }
  rename_into_place(tmp, path);
}

void write_text_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, [&](std::FILE* f) { std::fwrite(text.data(), 1, text.size(), f); });
}

void make_directories(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create directory: " + ec.message());
}

int remove_stale_temps(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  int removed = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // name.tmp.<pid>.<counter>
    const size_t dot = name.rfind('.');
    if (dot == std::string::npos || dot == 0) continue;
    const size_t tmp = name.rfind(".tmp.", dot - 1);
    if (tmp == std::string::npos || tmp == 0) continue;
    const std::string pid_s = name.substr(tmp + 5, dot - tmp - 5), n_s = name.substr(dot + 1);
    auto digits = [](const std::string& s) {
      return !s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos;
    };
    if (!digits(pid_s) || !digits(n_s)) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_s));
    if (pid == ::getpid() || pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code rm;
    if (fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

}  // namespace qforge
