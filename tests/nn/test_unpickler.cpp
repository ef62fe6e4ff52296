// nn/unpickler: the restricted pickle reader, on pickles written byte by byte.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>

#include "core/error.h"
#include "nn/unpickler.h"

using namespace qforge;
using namespace qforge::nn::pickle;

namespace {

// Pickle building blocks (Python's opcodes, protocol 2 unless stated).
std::string S(const std::string& s) {  // BINUNICODE
  const uint32_t n = static_cast<uint32_t>(s.size());
  std::string out = "X";
  out.append(reinterpret_cast<const char*>(&n), 4);
  return out.append(s);
}
std::string G(const std::string& module, const std::string& name) { return "c" + module + "\n" + name + "\n"; }
std::string K(uint8_t v) { return std::string("K") + static_cast<char>(v); }  // BININT1
const std::string kProto = "\x80\x02";
const std::string kOrderedDict = G("collections", "OrderedDict") + ")R";

// _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, sizes, strides, False, OrderedDict())
std::string tensor(const std::string& type, const std::string& key, int numel, int offset, std::vector<int> sizes,
                   std::vector<int> strides) {
  std::string t = G("torch._utils", "_rebuild_tensor_v2") + "((" + S("storage") + G("torch", type) + S(key) + S("cpu") +
                  K(static_cast<uint8_t>(numel)) + "tQ" + K(static_cast<uint8_t>(offset)) + "(";
  for (int s : sizes) t += K(static_cast<uint8_t>(s));
  t += "t(";
  for (int s : strides) t += K(static_cast<uint8_t>(s));
  t += "t\x89" + kOrderedDict + "tR";
  return t;
}

Pickle run(const std::string& bytes) {
  return unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "test.pth: archive/data.pkl");
}

// A state_dict of two tensors on one storage: "w" (2,3) and its transpose "wt" (3,2), offset 1.
const std::string kStateDict = kProto + kOrderedDict + std::string("q\0(", 3) + S("w") +
                               tensor("FloatStorage", "0", 8, 0, {2, 3}, {3, 1}) + S("wt") +
                               tensor("FloatStorage", "0", 8, 1, {3, 2}, {1, 3}) + "u.";

}  // namespace

TEST_CASE("unpickler: a state_dict of two views on one storage") {
  Pickle p = run(kStateDict);
  const Value& root = p.at(p.root);
  REQUIRE(root.kind == Kind::Dict);
  REQUIRE(root.items.size() == 4);
  const Value* w = p.dict_get(root, "w");
  const Value* wt = p.dict_get(root, "wt");
  REQUIRE(w);
  REQUIRE(wt);
  CHECK(w->kind == Kind::Tensor);
  CHECK(w->sizes == std::vector<int64_t>{2, 3});
  CHECK(w->strides == std::vector<int64_t>{3, 1});
  CHECK(w->i == 0);
  CHECK(wt->sizes == std::vector<int64_t>{3, 2});
  CHECK(wt->strides == std::vector<int64_t>{1, 3});
  CHECK(wt->i == 1);
  // One storage value, shared.
  CHECK(w->items[0] == wt->items[0]);
  const Value& s = p.at(w->items[0]);
  CHECK(s.kind == Kind::Storage);
  CHECK(s.s == "0");
  CHECK(s.dtype == "F32");
  CHECK(s.i == 8);
  CHECK(p.dict_get(root, "absent") == nullptr);
}

TEST_CASE("unpickler: plain data as training scripts save it") {
  // {"epoch": 3, "lr": 0.1, "neg": -2, "big": 2**40, "flags": [True, False, None], "t": (1,), "b": b"ab"}
  std::string pk = kProto + "}(" + S("epoch") + K(3) + S("lr") + "G\x3f\xb9\x99\x99\x99\x99\x99\x9a" + S("neg") + "J" +
                   std::string("\xfe\xff\xff\xff", 4) + S("big") + "\x8a\x06" + std::string("\0\0\0\0\0\x01", 6) +
                   S("flags") + "](\x88\x89Ne" + S("t") + K(1) + "\x85" + S("b") + "C\x02" + "ab" + "u.";
  Pickle p = run(pk);
  const Value& root = p.at(p.root);
  CHECK(p.dict_get(root, "epoch")->i == 3);
  CHECK(p.dict_get(root, "lr")->f == 0.1);
  CHECK(p.dict_get(root, "neg")->i == -2);
  CHECK(p.dict_get(root, "big")->i == (int64_t{1} << 40));
  const Value* flags = p.dict_get(root, "flags");
  REQUIRE(flags->items.size() == 3);
  CHECK(p.at(flags->items[0]).kind == Kind::Bool);
  CHECK(p.at(flags->items[0]).i == 1);
  CHECK(p.at(flags->items[1]).i == 0);
  CHECK(p.at(flags->items[2]).kind == Kind::None);
  CHECK(p.dict_get(root, "t")->kind == Kind::Tuple);
  CHECK(p.dict_get(root, "b")->s == "ab");
  // LONG1 negative: -1 in two bytes.
  Pickle n = run(kProto + "\x8a\x02\xff\xff.");
  CHECK(n.at(n.root).i == -1);
}

TEST_CASE("unpickler: globals outside the allow-list are refused, named, and never called") {
  // os.system("touch ...") as the pickle module would write it.
  const std::string pwn = kProto + G("os", "system") + S("touch /tmp/x") + "\x85R.";
  CHECK_THROWS_WITH_AS(run(pwn), doctest::Contains("refused the global 'os.system'"), Error);
  CHECK_THROWS_WITH_AS(run(pwn), doctest::Contains("test.pth: archive/data.pkl"), Error);
  CHECK_THROWS_WITH_AS(run(pwn), doctest::Contains("nothing was executed"), Error);
  CHECK_THROWS_WITH_AS(run(kProto + G("posix", "system") + "."), doctest::Contains("'posix.system'"), Error);
  CHECK_THROWS_WITH_AS(run(kProto + G("builtins", "eval") + "."), doctest::Contains("'builtins.eval'"), Error);
  // Protocol 4's STACK_GLOBAL builds the name from strings: the same check.
  const std::string stack =
      "\x80\x04\x8c\x08"
      "builtins"
      "\x8c\x04"
      "exec"
      "\x93.";
  CHECK_THROWS_WITH_AS(run(stack), doctest::Contains("'builtins.exec'"), Error);
  // Inside a state dict, after a good tensor.
  const std::string late = kProto + kOrderedDict + "(" + S("w") + tensor("FloatStorage", "0", 4, 0, {4}, {1}) + S("x") +
                           G("subprocess", "call") + S("ls") + "\x85Ru.";
  CHECK_THROWS_WITH_AS(run(late), doctest::Contains("'subprocess.call'"), Error);
  // A pickled module class gets the state_dict hint; torch names outside the list do not.
  CHECK_THROWS_WITH_AS(run(kProto + G("torchvision.models.resnet", "ResNet") + "."),
                       doctest::Contains("save model.state_dict()"), Error);
  CHECK_THROWS_WITH_AS(run(kProto + G("torch", "load") + "."), doctest::Contains("'torch.load'"), Error);
  // Unprintable bytes in a name are escaped, not copied into the message.
  CHECK_THROWS_WITH_AS(run(kProto + G("os\x1b[2J", "system") + "."), doctest::Contains("os\\x1b[2J.system"), Error);
  // Every allowed global is a torch or collections name.
  for (auto& g : allowed_globals()) CHECK((g.rfind("torch.", 0) == 0 || g == "collections.OrderedDict"));
}

TEST_CASE("unpickler: malformed pickles are errors naming the file") {
  auto bad = [](const std::string& bytes, const char* what) {
    CAPTURE(what);
    CHECK_THROWS_WITH_AS(run(bytes), doctest::Contains("test.pth: archive/data.pkl"), Error);
    CHECK_THROWS_WITH_AS(run(bytes), doctest::Contains(what), Error);
  };
  bad(kProto + "\x81.", "unsupported pickle opcode 0x81");           // NEWOBJ
  bad(kProto + "i" + "os\nsystem\n.", "unsupported pickle opcode");  // INST: protocol 0's call
  bad("\x80\x06.", "protocol 6");
  bad(kProto + "h\x05.", "memo entry 5");
  bad(kProto + ".", "empty stack");
  bad(kProto + "}", "without a STOP");
  bad(kProto + std::string("X\xff\xff\0\0ab.", 8), "runs past the end");
  bad(kProto + "K\x05(K\x01K\x02u.", "SETITEMS on an int");
  bad(kProto + "](K\x01K\x02u.", "SETITEMS on a list");
  bad(kProto + "(K\x01K\x02u.", "the stack is empty");
  bad(kProto + "}(K\x01u.", "odd number");
  bad(kProto + "]" + S("s") + "b.", "BUILD on a list");
  bad(kProto + G("torch", "FloatStorage") + ")R.", "cannot be called");
  bad(kProto + kOrderedDict.substr(0, kOrderedDict.size() - 2) + "(K\x01tR.", "OrderedDict with arguments");
  bad(kProto + "(" + S("tensor") + "tQ.", "not ('storage', type, key, location, numel)");
  // Views that leave their storage, or disagree about it.
  bad(kProto + tensor("FloatStorage", "0", 4, 0, {5}, {1}) + ".", "reaches element 4 of a storage of 4");
  bad(kProto + tensor("FloatStorage", "0", 6, 3, {2, 2}, {2, 1}) + ".", "reaches element 6 of a storage of 6");
  CHECK_NOTHROW(run(kProto + tensor("FloatStorage", "0", 6, 2, {2, 2}, {2, 1}) + "."));  // its last element is 5
  bad(kProto + tensor("FloatStorage", "0", 6, 0, {2, 2}, {2}) + ".", "2 sizes and 1 strides");
  bad(kProto + "(" + tensor("FloatStorage", "0", 4, 0, {4}, {1}) + tensor("HalfStorage", "0", 4, 0, {4}, {1}) + "t.",
      "appears as F32 x 4 and as F16 x 4");
  // An empty view may sit anywhere, as PyTorch allows.
  CHECK_NOTHROW(run(kProto + tensor("FloatStorage", "0", 1, 0, {0, 3}, {3, 1}) + "."));
}

TEST_CASE("unpickler: every truncation and random corruption is an Error, never a crash") {
  for (size_t n = 0; n < kStateDict.size(); ++n) {
    CAPTURE(n);
    CHECK_THROWS_AS(run(kStateDict.substr(0, n)), Error);
  }
  std::mt19937_64 rng(1);
  int ok = 0, errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string b = kStateDict;
    for (int k = 0; k < 3; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    try {
      run(b);
      ++ok;
    } catch (const Error&) {
      ++errors;
    }
  }
  CHECK(ok + errors == 3000);
  CHECK(errors > 0);
}

TEST_CASE("unpickler: deep nesting and self-reference neither overflow the stack nor leak") {
  // 200000 nested lists: each appended into the one below it.
  const int depth = 200000;
  std::string pk = kProto + std::string(depth, ']') + std::string(depth - 1, 'a') + ".";
  Pickle p = run(pk);
  CHECK(p.at(p.root).kind == Kind::List);
  CHECK(p.pool.size() == depth);
  // A list that holds itself (memo 0 fetched back into it).
  Pickle c = run(kProto + std::string("]q\0h\0a.", 7));
  CHECK(c.at(c.root).items.size() == 1);
  CHECK(c.at(c.root).items[0] == c.root);
}
