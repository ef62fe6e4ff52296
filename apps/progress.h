// A progress line: updated in place on a terminal, plain lines otherwise.
#pragma once
#include <cstdint>
#include <string>

namespace qforge::apps {

class Progress {
 public:
  Progress(std::string title, int64_t total, int64_t log_every);
  // Shows step done/total with a free-form status ("loss 0.41 lr 0.05") and rate.
  void update(int64_t done, const std::string& status, double items_per_s);
  void finish(const std::string& status);  // ends the line

 private:
  std::string title_;
  int64_t total_, log_every_;
  bool tty_;
  double start_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace qforge::apps
