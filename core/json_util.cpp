#include "core/json_util.h"

#include <cstdio>

#include "core/error.h"

namespace qforge {

using nlohmann::json;

json parse_json(const std::string& text, const std::string& what, bool ignore_comments) {
  // The callback sees each value's depth as it starts; throwing ends the (iterative) parse.
  json::parser_callback_t limit = [&](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw Error(what + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return true;
  };
  // nlohmann's parser takes a NUL for the end of the input and would ignore what follows it; JSON
  // text has none (a NUL in a string is written \u0000).
  if (const size_t nul = text.find('\0'); nul != std::string::npos)
    throw Error(what + ": not valid JSON: a NUL byte at offset " + std::to_string(nul));
  try {
    return json::parse(text, limit, /*allow_exceptions=*/true, ignore_comments);
  } catch (const json::exception& e) {
    throw Error(what + ": not valid JSON: " + e.what());
  }
}

namespace {

void append_brief(std::string& out, const json& v, int depth, size_t limit) {
  if (out.size() > limit) return;
  if (v.is_array() || v.is_object()) {
    const bool obj = v.is_object();
    if (depth >= 3 && !v.empty()) {
      out += obj ? "{...}" : "[...]";
      return;
    }
    out += obj ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end() && out.size() <= limit; ++it) {
      if (!first) out += ',';
      first = false;
      if (obj) out += json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace) + ':';
      append_brief(out, *it, depth + 1, limit);
    }
    out += obj ? '}' : ']';
    return;
  }
  out += v.dump(-1, ' ', false, json::error_handler_t::replace);  // a scalar: no recursion
}

}  // namespace

std::string brief(const json& v, size_t max_chars) {
  std::string s;
  append_brief(s, v, 0, max_chars);
  if (s.size() > max_chars) s = s.substr(0, max_chars) + "...";
  return s;
}

std::string printable(const std::string& s) {
  std::string r;
  r.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      r += buf;
    } else {
      r += static_cast<char>(c);
    }
  }
  return r;
}

}  // namespace qforge
