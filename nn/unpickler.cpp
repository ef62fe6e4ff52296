#include "nn/unpickler.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <unordered_map>

#include "core/error.h"

namespace qforge::nn::pickle {
namespace {

// The torch.*Storage types a persistent id may name, and the dtype of their elements.
const std::map<std::string, std::string>& storage_types() {
  static const std::map<std::string, std::string> m = {
      {"torch.FloatStorage", "F32"},  {"torch.HalfStorage", "F16"}, {"torch.BFloat16Storage", "BF16"},
      {"torch.DoubleStorage", "F64"}, {"torch.LongStorage", "I64"}, {"torch.IntStorage", "I32"},
      {"torch.ShortStorage", "I16"},  {"torch.CharStorage", "I8"},  {"torch.ByteStorage", "U8"},
      {"torch.BoolStorage", "BOOL"},
  };
  return m;
}

const char* const kCallables[] = {
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch.Size",
};

Value of(Kind k) {
  Value v;
  v.kind = k;
  return v;
}

// Bytes from the file, shown safely in a one-line message.
std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 120; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > 120) out += "...";
  return out;
}

// Pickle opcodes this reader knows (Python's Lib/pickle.py names).
enum Op : uint8_t {
  MARK = '(',
  STOP = '.',
  POP = '0',
  POP_MARK = '1',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  NONE = 'N',
  BINPERSID = 'Q',
  REDUCE = 'R',
  BINUNICODE = 'X',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  DICT = 'd',
  EMPTY_DICT = '}',
  APPENDS = 'e',
  BINGET = 'h',
  LONG_BINGET = 'j',
  LIST = 'l',
  EMPTY_LIST = ']',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  EMPTY_TUPLE = ')',
  SETITEMS = 'u',
  BINFLOAT = 'G',
  BINBYTES = 'B',
  SHORT_BINBYTES = 'C',
  PROTO = 0x80,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  LONG4 = 0x8b,
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};

class Machine {
 public:
  Machine(const uint8_t* data, size_t size, const std::string& where) : d_(data), n_(size), where_(where) {}

  Pickle run() {
    while (true) {
      op_at_ = pos_;
      const uint8_t op = u8();
      switch (op) {
        case PROTO: {
          const uint8_t v = u8();
          if (v < 2 || v > 5) fail("pickle protocol " + std::to_string(v) + " is not supported (2 to 5)");
          break;
        }
        case FRAME:
          take(8);  // a length hint only; the frame's opcodes follow inline
          break;
        case STOP: {
          if (stack_.empty()) fail("STOP with an empty stack");
          p_.root = stack_.back();
          return std::move(p_);
        }
        case MARK:
          marks_.push_back(stack_.size());
          break;
        case POP:
          pop();
          break;
        case POP_MARK:
          pop_mark();
          break;
        case NONE:
          push(Value{});
          break;
        case NEWTRUE:
        case NEWFALSE: {
          Value v = of(Kind::Bool);
          v.i = op == NEWTRUE;
          push(std::move(v));
          break;
        }
        case BININT1:
          push_int(u8());
          break;
        case BININT2:
          push_int(uint_le(2));
          break;
        case BININT:
          push_int(static_cast<int32_t>(static_cast<uint32_t>(uint_le(4))));
          break;
        case LONG1:
          push_int(long_le(u8()));
          break;
        case LONG4:
          push_int(long_le(uint_le(4)));
          break;
        case BINFLOAT: {
          const uint8_t* b = take(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | b[k];  // big-endian
          Value v = of(Kind::Float);
          std::memcpy(&v.f, &bits, 8);
          push(std::move(v));
          break;
        }
        case SHORT_BINUNICODE:
          push_str(Kind::Str, u8());
          break;
        case BINUNICODE:
          push_str(Kind::Str, uint_le(4));
          break;
        case BINUNICODE8:
          push_str(Kind::Str, uint_le(8));
          break;
        case SHORT_BINBYTES:
          push_str(Kind::Bytes, u8());
          break;
        case BINBYTES:
          push_str(Kind::Bytes, uint_le(4));
          break;
        case BINBYTES8:
          push_str(Kind::Bytes, uint_le(8));
          break;
        case EMPTY_TUPLE:
          push(of(Kind::Tuple));
          break;
        case TUPLE1:
        case TUPLE2:
        case TUPLE3: {
          const size_t k = op - TUPLE1 + 1;
          if (stack_.size() < k + floor()) fail("TUPLE" + std::to_string(k) + " needs " + std::to_string(k) + " items");
          Value v = of(Kind::Tuple);
          v.items.assign(stack_.end() - k, stack_.end());
          stack_.resize(stack_.size() - k);
          push(std::move(v));
          break;
        }
        case TUPLE:
        case LIST: {
          Value v = of(op == TUPLE ? Kind::Tuple : Kind::List);
          v.items = pop_mark();
          push(std::move(v));
          break;
        }
        case EMPTY_LIST:
          push(of(Kind::List));
          break;
        case EMPTY_DICT:
          push(of(Kind::Dict));
          break;
        case DICT: {
          Value v = of(Kind::Dict);
          v.items = pop_mark();
          if (v.items.size() % 2) fail("DICT with an odd number of items");
          push(std::move(v));
          break;
        }
        case APPEND: {
          Ref x = pop();
          container(Kind::List, "APPEND").items.push_back(x);
          break;
        }
        case APPENDS: {
          std::vector<Ref> xs = pop_mark();
          auto& l = container(Kind::List, "APPENDS").items;
          l.insert(l.end(), xs.begin(), xs.end());
          break;
        }
        case SETITEM: {
          Ref v = pop(), k = pop();
          auto& items = container(Kind::Dict, "SETITEM").items;
          items.push_back(k);
          items.push_back(v);
          break;
        }
        case SETITEMS: {
          std::vector<Ref> kv = pop_mark();
          if (kv.size() % 2) fail("SETITEMS with an odd number of items");
          auto& items = container(Kind::Dict, "SETITEMS").items;
          items.insert(items.end(), kv.begin(), kv.end());
          break;
        }
        case BINPUT:
          memo_[u8()] = top();
          break;
        case LONG_BINPUT:
          memo_[static_cast<uint32_t>(uint_le(4))] = top();
          break;
        case MEMOIZE: {
          const uint32_t k = static_cast<uint32_t>(memo_.size());
          memo_[k] = top();
          break;
        }
        case BINGET:
          get(u8());
          break;
        case LONG_BINGET:
          get(static_cast<uint32_t>(uint_le(4)));
          break;
        case GLOBAL: {
          std::string module = line(), name = line();
          push_global(module + "." + name);
          break;
        }
        case STACK_GLOBAL: {
          Ref name = pop(), module = pop();
          if (at(name).kind != Kind::Str || at(module).kind != Kind::Str) fail("STACK_GLOBAL needs two strings");
          push_global(at(module).s + "." + at(name).s);
          break;
        }
        case BINPERSID:
          push_ref(storage(pop()));
          break;
        case REDUCE: {
          Ref args = pop(), fn = pop();
          push_ref(reduce(fn, args));
          break;
        }
        case BUILD: {
          pop();  // the state
          // OrderedDict's attributes (a state_dict's _metadata: module versions), which a state dict does not need.
          if (at(top()).kind != Kind::Dict)
            fail(std::string("BUILD on ") + kind_name(at(top()).kind) + " (only a dict's attributes are accepted)");
          break;
        }
        default: {
          char buf[8];
          std::snprintf(buf, sizeof buf, "0x%02x", op);
          fail(std::string("unsupported pickle opcode ") + buf +
               (op >= 0x20 && op < 0x7f ? std::string(" ('") + static_cast<char>(op) + "')" : std::string()) +
               " (not one a state_dict needs)");
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw Error(where_ + ", byte " + std::to_string(op_at_) + ": " + msg);
  }

  const uint8_t* take(size_t k) {
    if (k > n_ - pos_) fail("the pickle ends inside an opcode (truncated data)");
    const uint8_t* p = d_ + pos_;
    pos_ += k;
    return p;
  }
  uint8_t u8() {
    if (pos_ >= n_) {
      op_at_ = pos_;
      fail("the pickle ends without a STOP opcode (truncated data)");
    }
    return d_[pos_++];
  }
  uint64_t uint_le(int k) {
    const uint8_t* b = take(k);
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }
  // A little-endian two's complement integer of k bytes (LONG1, LONG4).
  int64_t long_le(uint64_t k) {
    if (k > 8) fail("integer of " + std::to_string(k) + " bytes is too large");
    if (k == 0) return 0;
    uint64_t v = uint_le(static_cast<int>(k));
    if (k < 8 && (v >> (8 * k - 1)) & 1) v |= ~uint64_t{0} << (8 * k);  // sign-extend
    return static_cast<int64_t>(v);
  }
  std::string line() {
    size_t start = pos_;
    while (pos_ < n_ && d_[pos_] != '\n') ++pos_;
    if (pos_ >= n_) fail("GLOBAL without a newline (truncated data)");
    return std::string(reinterpret_cast<const char*>(d_ + start), pos_++ - start);
  }

  const Value& at(Ref r) const { return p_.pool[r]; }
  Ref make(Value v) {
    p_.pool.push_back(std::move(v));
    return static_cast<Ref>(p_.pool.size() - 1);
  }
  void push(Value v) { stack_.push_back(make(std::move(v))); }
  void push_ref(Ref r) { stack_.push_back(r); }
  void push_int(int64_t x) {
    Value v = of(Kind::Int);
    v.i = x;
    push(std::move(v));
  }
  void push_str(Kind k, uint64_t len) {
    if (len > n_ - pos_) fail("a string of " + std::to_string(len) + " bytes runs past the end (truncated data)");
    Value v = of(k);
    const uint8_t* b = take(static_cast<size_t>(len));
    v.s.assign(reinterpret_cast<const char*>(b), static_cast<size_t>(len));
    push(std::move(v));
  }
  // Items below the innermost MARK belong to the enclosing structure.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Ref top() const {
    if (stack_.size() <= floor()) fail("the stack is empty");
    return stack_.back();
  }
  Ref pop() {
    Ref r = top();
    stack_.pop_back();
    return r;
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Value& container(Kind k, const char* op) {
    Ref r = top();
    if (at(r).kind != k) fail(std::string(op) + " on " + kind_name(at(r).kind) + ", expected " + kind_name(k));
    return p_.pool[r];
  }
  void get(uint32_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) fail("memo entry " + std::to_string(k) + " was never set");
    push_ref(it->second);
  }

  void push_global(const std::string& name) {
    bool ok = storage_types().count(name) > 0;
    for (const char* c : kCallables) ok = ok || name == c;
    if (!ok) {
      std::string hint;
      if (name.rfind("torch.", 0) != 0 && name.rfind("collections.", 0) != 0)
        hint = " (torch.save(model) stores Python classes; save model.state_dict() instead)";
      fail("refused the global '" + printable(name) +
           "' (a state_dict needs only collections.OrderedDict, torch.Size, torch._utils._rebuild_tensor_v2 or "
           "_rebuild_parameter, and the torch.*Storage types)" +
           hint + "; nothing was executed");
    }
    Value v = of(Kind::Global);
    v.s = name;
    push(std::move(v));
  }

  // BINPERSID: PyTorch's ('storage', torch.XStorage, key, location, numel).
  Ref storage(Ref pid) {
    const Value& t = at(pid);
    auto is = [&](size_t i, Kind k) { return at(t.items[i]).kind == k; };
    if (t.kind != Kind::Tuple || t.items.size() != 5 || !is(0, Kind::Str) || at(t.items[0]).s != "storage" ||
        !is(1, Kind::Global) || !is(2, Kind::Str) || !is(3, Kind::Str) || !is(4, Kind::Int))
      fail("a persistent id that is not ('storage', type, key, location, numel)");
    const std::string& type = at(t.items[1]).s;
    auto dt = storage_types().find(type);
    if (dt == storage_types().end()) fail("a persistent id names '" + type + "', which is not a storage type");
    const std::string key = at(t.items[2]).s;
    const int64_t numel = at(t.items[4]).i;
    if (numel < 0 || numel > (int64_t{1} << 40))
      fail("storage '" + printable(key) + "' has " + std::to_string(numel) + " elements");
    auto it = storages_.find(key);
    if (it != storages_.end()) {
      const Value& s = at(it->second);
      if (s.dtype != dt->second || s.i != numel)
        fail("storage '" + printable(key) + "' appears as " + s.dtype + " x " + std::to_string(s.i) + " and as " +
             dt->second + " x " + std::to_string(numel));
      return it->second;
    }
    Value s = of(Kind::Storage);
    s.s = key;
    s.dtype = dt->second;
    s.i = numel;
    Ref r = make(std::move(s));
    storages_[key] = r;
    return r;
  }

  std::vector<int64_t> ints(Ref r, const char* what) {
    const Value& t = at(r);
    if (t.kind != Kind::Tuple) fail(std::string("a tensor's ") + what + " is " + kind_name(t.kind) + ", not a tuple");
    std::vector<int64_t> out;
    for (Ref e : t.items) {
      if (at(e).kind != Kind::Int) fail(std::string("a tensor's ") + what + " holds " + kind_name(at(e).kind));
      out.push_back(at(e).i);
    }
    return out;
  }

  Ref reduce(Ref fn_ref, Ref args_ref) {
    const Value& fn = at(fn_ref);
    if (fn.kind != Kind::Global) fail(std::string("REDUCE calls ") + kind_name(fn.kind) + ", not a global");
    if (at(args_ref).kind != Kind::Tuple) fail("REDUCE of " + fn.s + " without an argument tuple");
    const std::vector<Ref> args = at(args_ref).items;  // a copy: make() below may move the pool
    const std::string name = fn.s;
    if (name == "collections.OrderedDict") {
      if (!args.empty()) fail("collections.OrderedDict with arguments");
      return make(of(Kind::Dict));
    }
    if (name == "torch.Size") {
      if (args.size() != 1 || at(args[0]).kind != Kind::Tuple) fail("torch.Size without one tuple");
      return args[0];
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      if (args.empty() || at(args[0]).kind != Kind::Tensor) fail(name + " of something not a tensor");
      return args[0];
    }
    if (name == "torch._utils._rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (args.size() < 4 || args.size() > 7 || at(args[0]).kind != Kind::Storage || at(args[1]).kind != Kind::Int)
        fail("_rebuild_tensor_v2 without (storage, offset, size, stride, ...)");
      Value t = of(Kind::Tensor);
      t.items = {args[0]};
      t.i = at(args[1]).i;
      t.sizes = ints(args[2], "size");
      t.strides = ints(args[3], "stride");
      check_view(t, at(args[0]));
      return make(std::move(t));
    }
    fail(name + " cannot be called");
  }

  // The view must lie inside its storage: offset + sum((size - 1) * stride) < numel.
  void check_view(const Value& t, const Value& storage) {
    const std::string what = "tensor on storage '" + printable(storage.s) + "'";
    if (t.sizes.size() != t.strides.size())
      fail(what + " has " + std::to_string(t.sizes.size()) + " sizes and " + std::to_string(t.strides.size()) +
           " strides");
    if (t.sizes.size() > 16) fail(what + " has " + std::to_string(t.sizes.size()) + " dimensions");
    if (t.i < 0) fail(what + " has a negative storage offset");
    __int128 last = t.i, count = 1;
    for (size_t k = 0; k < t.sizes.size(); ++k) {
      if (t.sizes[k] < 0 || t.strides[k] < 0 || t.sizes[k] > (int64_t{1} << 40) || t.strides[k] > (int64_t{1} << 40))
        fail(what + " has a negative or impossible size or stride");
      count *= t.sizes[k];
      if (t.sizes[k] > 0) last += static_cast<__int128>(t.sizes[k] - 1) * t.strides[k];
      if (count > (__int128{1} << 40)) fail(what + " is impossibly large");
    }
    if (count > 0 && last >= storage.i)
      fail(what + " (offset " + std::to_string(t.i) + ") reaches element " +
           std::to_string(static_cast<int64_t>(last)) + " of a storage of " + std::to_string(storage.i) + " elements");
  }

  const uint8_t* d_;
  size_t n_, pos_ = 0, op_at_ = 0;
  std::string where_;
  Pickle p_;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Ref> memo_;
  std::map<std::string, Ref> storages_;
};

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "a bool";
    case Kind::Int:
      return "an int";
    case Kind::Float:
      return "a float";
    case Kind::Str:
      return "a str";
    case Kind::Bytes:
      return "bytes";
    case Kind::Tuple:
      return "a tuple";
    case Kind::List:
      return "a list";
    case Kind::Dict:
      return "a dict";
    case Kind::Global:
      return "a global";
    case Kind::Storage:
      return "a storage";
    case Kind::Tensor:
      return "a tensor";
  }
  return "?";
}

const Value* Pickle::dict_get(const Value& dict, const std::string& key) const {
  const Value* found = nullptr;
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2)
    if (at(dict.items[i]).kind == Kind::Str && at(dict.items[i]).s == key) found = &at(dict.items[i + 1]);
  return found;
}

const std::vector<std::string>& allowed_globals() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> v(std::begin(kCallables), std::end(kCallables));
    for (auto& [name, _] : storage_types()) v.push_back(name);
    return v;
  }();
  return all;
}

Pickle unpickle(const uint8_t* data, size_t size, const std::string& where) { return Machine(data, size, where).run(); }

}  // namespace qforge::nn::pickle
