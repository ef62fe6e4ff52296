// The fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput once on every file named on the
// command line and on every file of every directory named (in sorted order). ctest's fuzz_replay_*
// tests run each target this way over its committed seeds and the inputs of every crash found so
// far, in the Release and the ASan builds alike (tests/fuzz/CMakeLists.txt).
//
// --mutate=N[:SEED] then runs N random mutants of those inputs (bit flips, byte changes, inserted,
// deleted, repeated and cut ranges; no coverage guidance), each written to ./fuzz-mutant first, so a
// crash leaves its input behind. ctest's fuzz_mutate_* run 3000 each: a little fuzzing under the
// g++ builds' sanitizers, where clang's libFuzzer (scripts/fuzz.sh) is not built.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  long mutants = 0;
  unsigned long long mutate_seed = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--mutate=", 9) == 0) {
      char* end = nullptr;
      mutants = std::strtol(argv[i] + 9, &end, 10);
      if (*end == ':') mutate_seed = std::strtoull(end + 1, nullptr, 10);
      continue;
    }
    fs::path p(argv[i]);
    if (fs::is_directory(p)) {
      for (auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(p)) {
      files.push_back(p);
    } else {
      std::fprintf(stderr, "fuzz replay: %s: no such file or directory\n", argv[i]);
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::vector<uint8_t>> inputs;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    inputs.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "fuzz replay: %s (%zu bytes)\n", f.c_str(), inputs.back().size());
    LLVMFuzzerTestOneInput(inputs.back().data(), inputs.back().size());
  }
  std::printf("fuzz replay: %zu inputs, no failure\n", files.size());
  // No input at all means a wrong path, not a pass.
  if (files.empty()) return 1;

  std::mt19937_64 rng(mutate_seed);
  auto below = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
  for (long k = 0; k < mutants; ++k) {
    std::vector<uint8_t> m = inputs[below(inputs.size())];
    for (int edits = 1 + static_cast<int>(below(4)); edits > 0; --edits) {
      const size_t at = below(m.size() + 1);
      switch (below(7)) {
        case 0:  // flip a bit
          if (at < m.size()) m[at] ^= static_cast<uint8_t>(1u << below(8));
          break;
        case 1: {  // an interesting byte
          static const uint8_t kBytes[] = {0, 1, 0x7f, 0x80, 0xff, '0', '9', '"', '[', '{', '-', '.', 'e'};
          if (at < m.size()) m[at] = kBytes[below(sizeof kBytes)];
          break;
        }
        case 2:  // insert a random byte
          m.insert(m.begin() + static_cast<long>(at), static_cast<uint8_t>(rng()));
          break;
        case 3:  // delete a range
          m.erase(m.begin() + static_cast<long>(at), m.begin() + static_cast<long>(at + below(m.size() - at + 1) / 4));
          break;
        case 4: {  // repeat a range
          const size_t n = below(std::min<size_t>(m.size() - at, 64) + 1);
          std::vector<uint8_t> r(m.begin() + static_cast<long>(at), m.begin() + static_cast<long>(at + n));
          m.insert(m.begin() + static_cast<long>(at), r.begin(), r.end());
          break;
        }
        case 5:  // cut the end
          m.resize(at);
          break;
        default:  // a random byte
          if (at < m.size()) m[at] = static_cast<uint8_t>(rng());
      }
    }
    {
      std::ofstream out("fuzz-mutant", std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(m.data()), static_cast<std::streamsize>(m.size()));
    }
    LLVMFuzzerTestOneInput(m.data(), m.size());
  }
  if (mutants) {
    std::printf("fuzz mutate: %ld mutants (seed %llu), no failure\n", mutants,
                static_cast<unsigned long long>(mutate_seed));
    fs::remove("fuzz-mutant");
  }
  return 0;
}
