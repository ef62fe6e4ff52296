#include "apps/progress.h"

#include <unistd.h>

#include <cstdio>

#include "apps/timing.h"

namespace qforge::apps {

std::string format_duration(double s) {
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ds", t);
  return buf;
}

Progress::Progress(std::string title, int64_t total, int64_t log_every)
    : title_(std::move(title)),
      total_(total),
      log_every_(log_every > 0 ? log_every : 50),
      tty_(isatty(fileno(stdout))),
      start_(now_seconds()) {}

void Progress::update(int64_t done, const std::string& status, double items_per_s) {
  if (!tty_ && done % log_every_ != 0 && done != total_) return;
  double el = now_seconds() - start_;
  double eta = done > 0 ? el / done * (total_ - done) : 0;
  std::printf("%s%s %lld/%lld  %s  %.1f img/s  ETA %s%s", tty_ ? "\r\033[K" : "", title_.c_str(),
              static_cast<long long>(done), static_cast<long long>(total_), status.c_str(), items_per_s,
              format_duration(eta).c_str(), tty_ ? "" : "\n");
  std::fflush(stdout);
}

void Progress::finish(const std::string& status) {
  std::printf("%s%s %s (%s)\n", tty_ ? "\r\033[K" : "", title_.c_str(), status.c_str(),
              format_duration(now_seconds() - start_).c_str());
  std::fflush(stdout);
}

}  // namespace qforge::apps
