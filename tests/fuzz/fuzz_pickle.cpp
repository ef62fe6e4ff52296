// Fuzz target: the restricted pickle reader (nn/unpickler.h) that reads a .pth file's data.pkl.
// The input is the pickle. Properties: a bad pickle is a qforge::Error naming its source; one that
// reads has every reference inside the pool.
#include "fuzz_util.h"
#include "nn/unpickler.h"

using namespace qforge;
using namespace qforge::nn::pickle;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string where = "fuzz.pth: archive/data.pkl";
  Pickle p;
  try {
    p = unpickle(data, size, where);
  } catch (const Error& e) {
    fuzz::expect_names(e, {where});
    return 0;
  }
  FUZZ_CHECK(p.root < p.pool.size(), "root outside the pool");
  for (const Value& v : p.pool)
    for (Ref r : v.items) FUZZ_CHECK(r < p.pool.size(), "an item outside the pool");
  return 0;
}
