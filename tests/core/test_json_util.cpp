// parse_json, brief and printable (core/json_util.h): JSON from files read with bounded nesting,
// and values and names from files quoted in messages without recursion or control characters.
#include <doctest/doctest.h>

#include <string>

#include "core/error.h"
#include "core/json_util.h"

using namespace qforge;
using nlohmann::json;

namespace {

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string error_of(const std::string& text, bool comments = false) {
  try {
    parse_json(text, "x.json", comments);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("parse_json: nesting up to the limit parses, deeper is an Error naming the source") {
  CHECK(parse_json(nested(kMaxJsonDepth), "x.json").is_array());
  CHECK(error_of(nested(kMaxJsonDepth + 1)) == "x.json: JSON nested deeper than 64 levels");
  // Found by fuzz_config: 100000 brackets overflowed the stack when an error message dumped them.
  CHECK(error_of("{\"model\": " + nested(100000) + "}") == "x.json: JSON nested deeper than 64 levels");
  CHECK(error_of("{\"a\": " + std::string(100000, '{')).find("x.json: ") == 0);
}

TEST_CASE("parse_json: a NUL byte is an error, not the end of the text") {
  // nlohmann's parser stops at a NUL: "{}\0garbage" parsed as {} (found by fuzz_safetensors).
  CHECK(error_of(std::string("{}\0garbage", 10)) == "x.json: not valid JSON: a NUL byte at offset 2");
  CHECK(parse_json(R"({"a": "\u0000"})", "x.json")["a"].get<std::string>() == std::string(1, '\0'));
}

TEST_CASE("parse_json: syntax errors name the source; comments only when asked") {
  CHECK(error_of("{\"a\": ").find("x.json: not valid JSON: ") == 0);
  CHECK(error_of("// c\n{}").find("x.json: not valid JSON: ") == 0);
  CHECK(parse_json("// c\n{\"a\": 1 /* d */}", "x.json", true)["a"] == 1);
}

TEST_CASE("brief: short, shallow, escaped") {
  CHECK(brief(json::parse(R"({"a":[1,2],"b":"x"})")) == R"({"a":[1,2],"b":"x"})");
  CHECK(brief(json::parse("[[[[1]]]]")) == "[[[[...]]]]");
  CHECK(brief(json::parse("[[[[]]]]")) == "[[[[]]]]");
  json big = json::array();
  for (int i = 0; i < 1000; ++i) big.push_back(i);
  const std::string b = brief(big);
  CHECK(b.size() == 83);
  CHECK(b.substr(0, 10) == "[0,1,2,3,4");
  CHECK(b.substr(80) == "...");
  CHECK(brief(json(std::string("a\0b", 3))) == "\"a\\u0000b\"");
  // Deeply nested values (built, not parsed) are not recursed into.
  json deep = json::array();
  for (int i = 0; i < 100000; ++i) deep = json::array({std::move(deep)});
  CHECK(brief(deep) == "[[[[...]]]]");
}

TEST_CASE("printable: control characters as \\xNN") {
  CHECK(printable("conv1.weight") == "conv1.weight");
  CHECK(printable(std::string("a\0b\n\x7f", 5)) == "a\\x00b\\x0a\\x7f");
  CHECK(printable("été") == "été");
}
