// A restricted reader of Python pickles, enough for the data.pkl of a PyTorch
// state_dict: it builds plain values (None, bool, int, float, str, bytes,
// tuple, list, dict) and never executes anything. A GLOBAL is only a symbol:
// one outside a short allow-list (collections.OrderedDict, torch.Size, the
// torch._utils rebuild functions, the torch.*Storage types) is refused on
// sight with an error naming it, wherever it is in the pickle; the allowed
// ones are interpreted by this reader (OrderedDict() is an empty dict,
// _rebuild_tensor_v2(...) a Tensor view, a persistent id a Storage). PyTorch's
// torch.load(weights_only=True) takes the same stance.
//
//   pickle::Pickle p = pickle::unpickle(bytes.data(), bytes.size(), "model.pth: archive/data.pkl");
//   const pickle::Value& root = p.at(p.root);   // e.g. a Dict of Str -> Tensor
//
// Values live in one pool and refer to each other by index, so cyclic or
// deeply nested input can neither leak nor overflow the stack.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qforge::nn::pickle {

using Ref = uint32_t;

enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };
const char* kind_name(Kind k);  // "an int", "a tensor", ...

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;  // Bool, Int; Tensor: storage offset (elements); Storage: numel
  double f = 0;   // Float
  // Str, Bytes; Global: "module.name"; Storage: its key (the archive member data/<key>)
  std::string s;
  std::string dtype;                    // Storage: safetensors dtype name (F32, F16, BF16, F64, I64, ...)
  std::vector<Ref> items;               // Tuple, List; Dict: key, value, key, value, ...; Tensor: {storage}
  std::vector<int64_t> sizes, strides;  // Tensor
};

struct Pickle {
  std::vector<Value> pool;
  Ref root = 0;
  const Value& at(Ref r) const { return pool[r]; }
  // A Dict's value under a string key (the last one set), or nullptr.
  const Value* dict_get(const Value& dict, const std::string& key) const;
};

// The globals the reader accepts, as "module.name".
const std::vector<std::string>& allowed_globals();

// Reads one pickle (protocols 2 to 5; PyTorch writes 2). `where` names the
// file (and member) in every error: a bad or truncated pickle, an opcode this
// reader does not know, a global outside the allow-list, a malformed tensor.
Pickle unpickle(const uint8_t* data, size_t size, const std::string& where);

}  // namespace qforge::nn::pickle
