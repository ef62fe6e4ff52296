// write_file_atomic and remove_stale_temps (core/atomic_file.h): a failed write leaves neither a
// temporary nor a changed file, and the temporaries of killed processes are cleaned up.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

using namespace qforge;
namespace fs = std::filesystem;

namespace {

struct Dir {
  fs::path p = fs::temp_directory_path() / ("qforge_atomic_" + std::to_string(::getpid()));
  Dir() {
    fs::remove_all(p);
    fs::create_directories(p);
  }
  ~Dir() { fs::remove_all(p); }
  std::string operator/(const std::string& n) const { return (p / n).string(); }
  std::vector<std::string> names() const {
    std::vector<std::string> r;
    for (auto& e : fs::directory_iterator(p)) r.push_back(e.path().filename().string());
    std::sort(r.begin(), r.end());
    return r;
  }
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The pid of a process that has ended (and been reaped).
pid_t dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  int st = 0;
  waitpid(pid, &st, 0);
  return pid;
}

}  // namespace

TEST_CASE("write_file_atomic: the file is replaced whole, or not at all") {
  Dir d;
  write_text_atomic(d / "a.json", "old");
  CHECK(slurp(d / "a.json") == "old");
  CHECK_THROWS_WITH_AS(write_file_atomic(d / "a.json",
                                         [](std::FILE* f) {
                                           std::fputs("half", f);
                                           throw Error("writer failed");
                                         }),
                       "writer failed", Error);
  CHECK(slurp(d / "a.json") == "old");
  CHECK(d.names() == std::vector<std::string>{"a.json"});
  write_text_atomic(d / "a.json", "new");
  CHECK(slurp(d / "a.json") == "new");
  CHECK(d.names() == std::vector<std::string>{"a.json"});
  CHECK_THROWS_WITH_AS(write_text_atomic(d / "no/such/dir/a.json", "x"),
                       doctest::Contains((d / "no/such/dir/a.json: cannot create file").c_str()), Error);
}

TEST_CASE("remove_stale_temps: removes a dead process's temporaries, keeps the rest") {
  Dir d;
  const std::string dead = std::to_string(dead_pid()), self = std::to_string(::getpid());
  for (const std::string& n :
       std::vector<std::string>{"last.safetensors", "last.safetensors.tmp." + dead + ".0",
                                "config.json.tmp." + dead + ".12", "best.safetensors.tmp." + self + ".3",
                                "metrics.jsonl.tmp.1.0",  // pid 1 is running
                                "notes.tmp.txt", "x.tmp.12ab.0", ".tmp." + dead + ".1"})
    std::ofstream(d / n) << "x";
  CHECK(remove_stale_temps(d.p.string()) == 2);
  CHECK(d.names() == std::vector<std::string>{".tmp." + dead + ".1", "best.safetensors.tmp." + self + ".3",
                                              "last.safetensors", "metrics.jsonl.tmp.1.0", "notes.tmp.txt",
                                              "x.tmp.12ab.0"});
  CHECK(remove_stale_temps(d / "missing") == 0);
}
