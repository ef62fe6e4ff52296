// JSON from files, read defensively: nesting is bounded when parsing (nlohmann's dump, copy and
// compare recurse, so a 200 KB file of nested brackets would overflow the stack in any of them
// later), and values quoted in error messages are shortened and never recursed into deeply.
//
//   json j = parse_json(text, "model.qfm: graph");           // Error naming "model.qfm: graph"
//   throw Error(at + " must be a string, got " + brief(v));  // at most ~80 characters of v
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace qforge {

// Deeper than any file of ours (configs nest 4 levels, .qfm graphs 4) and far from the stack's limit.
constexpr int kMaxJsonDepth = 64;

// Parses text, throwing Error("<what>: not valid JSON: ...") or Error("<what>: nested deeper than
// 64 levels"). ignore_comments: allow // and /* */ (configs).
nlohmann::json parse_json(const std::string& text, const std::string& what, bool ignore_comments = false);

// v as JSON text for a message: at most max_chars characters (then "..."), containers shown to a
// depth of 3 ([...] below), control characters escaped.
std::string brief(const nlohmann::json& v, size_t max_chars = 80);

// s with control characters (and DEL) as \xNN, for names from files quoted in messages: a NUL would
// cut the message short where it is printed.
std::string printable(const std::string& s);

}  // namespace qforge
