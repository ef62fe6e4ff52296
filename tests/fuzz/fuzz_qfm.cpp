// Fuzz target: int8 models (.qfm), loaded and then run.
// The input is the file. Properties: a bad file is a qforge::Error naming it; a model that loads
// saves and reloads to the same graph; when its input is small, the runtime either refuses the
// graph with an Error or runs it, and every instruction-set level gives the scalar reference's bytes.
#include <cstring>

#include "core/cpu.h"
#include "fuzz_util.h"
#include "quant/graph.h"
#include "quant/runtime.h"
#include "safetensors_mutator.h"

using namespace qforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("in.qfm", data, size);
  quant::Int8Graph g;
  try {
    g = quant::load_int8_model(path);
  } catch (const Error& e) {
    fuzz::expect_names(e, {path});
    return 0;
  }
  const std::string out = fuzz::path_in_scratch("out.qfm");
  quant::save_int8_model(out, g);
  quant::Int8Graph back = quant::load_int8_model(out);
  FUZZ_CHECK(back.to_json() == g.to_json(), "graph differs after a round trip");
  FUZZ_CHECK(back.config == g.config, "config differs after a round trip");

  const int64_t C = g.input_shape[0], H = g.input_shape[1], W = g.input_shape[2];
  if (C * H * W > 4096) return 0;  // keeps each run short; the plan's size checks are exercised anyway
  Tensor x = Tensor::empty({2, C, H, W});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(data[i % size]) / 64.f - 2.f;
  std::vector<uint8_t> ref;
  for (Isa isa : supported_isas()) {
    std::vector<uint8_t> got;
    try {
      quant::Int8Runtime rt(g, isa);
      Tensor y = rt.run(x);
      got.assign(reinterpret_cast<const uint8_t*>(y.data()),
                 reinterpret_cast<const uint8_t*>(y.data()) + 4 * y.numel());
    } catch (const Error&) {
      // The graph is valid but does not fit its own input (a pool larger than the image, ...).
      FUZZ_CHECK(isa == Isa::scalar, std::string("only ") + isa_name(isa) + " refused the graph");
      return 0;
    }
    if (isa == Isa::scalar)
      ref = got;
    else
      FUZZ_CHECK(got == ref, std::string(isa_name(isa)) + " differs from the scalar reference");
  }
  return 0;
}

#ifdef QFORGE_LIBFUZZER
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  return qforge::fuzz::mutate_safetensors(data, size, max_size, seed, "graph");
}
#endif
