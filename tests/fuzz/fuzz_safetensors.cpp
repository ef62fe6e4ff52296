// Fuzz target: safetensors files and the float checkpoints stored in them.
// The input is the file. Properties: a bad file is a qforge::Error naming it; a file that reads has
// every tensor's bytes matching its shape and dtype, converts to float when it is F32/F64, loads as
// a checkpoint (or fails by name), and writes back to a file that reads as the same tensors.
#include "apps/checkpoint.h"
#include "fuzz_util.h"
#include "nn/safetensors.h"
#include "safetensors_mutator.h"

using namespace qforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("in.safetensors", data, size);
  nn::SafeTensors st;
  try {
    st = nn::read_safetensors(path);
  } catch (const Error& e) {
    fuzz::expect_names(e, {path});
    return 0;
  }
  for (auto& [name, e] : st.tensors) {
    FUZZ_CHECK(e.bytes.size() == static_cast<size_t>(numel_of(e.shape)) * nn::dtype_size(e.dtype), name);
    if (e.dtype == "F32" || e.dtype == "F64") FUZZ_CHECK(st.f32(name).numel() == numel_of(e.shape), name);
  }
  try {
    apps::LoadedCheckpoint ck = apps::load_checkpoint(path);
    ck.model_state();
    ck.optim_state();
  } catch (const Error& e) {
    fuzz::expect_names(e, {path});
  }

  // Written back, it reads as the same tensors and metadata.
  std::vector<std::pair<std::string, nn::StEntry>> entries(st.tensors.begin(), st.tensors.end());
  const std::string out = fuzz::path_in_scratch("out.safetensors");
  nn::write_safetensors(out, entries, st.metadata);
  nn::SafeTensors back = nn::read_safetensors(out);
  FUZZ_CHECK(back.metadata == st.metadata, "metadata differs after a round trip");
  FUZZ_CHECK(back.tensors.size() == st.tensors.size(), "tensor count differs after a round trip");
  for (auto& [name, e] : st.tensors) {
    FUZZ_CHECK(back.has(name), name);
    const nn::StEntry& b = back.at(name);
    FUZZ_CHECK(b.dtype == e.dtype && b.shape == e.shape && b.bytes == e.bytes, name);
  }
  return 0;
}

#ifdef QFORGE_LIBFUZZER
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  return qforge::fuzz::mutate_safetensors(data, size, max_size, seed, "config");
}
#endif
