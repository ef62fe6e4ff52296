#include "core/config_keys.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/json_util.h"

namespace qforge::config {

using nlohmann::json;

namespace {

Key make(std::string path, Type t, json def, std::string meaning) {
  Key k;
  k.path = std::move(path);
  k.type = t;
  k.def = std::move(def);
  k.meaning = std::move(meaning);
  return k;
}

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

// "an integer", as in "must be an integer".
std::string with_article(Type t) {
  switch (t) {
    case Type::Bool:
      return "a boolean";
    case Type::Int:
      return "an integer";
    case Type::Number:
      return "a number";
    case Type::String:
      return "a string";
    case Type::NumberList:
      return "a list of numbers";
    case Type::StringList:
      return "a list of strings";
    case Type::Map:
      return "an object";
    case Type::ObjectList:
      return "a list of objects";
  }
  return "?";
}

std::string kind_of(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return "null";
}

bool has_type(Type t, const json& v) {
  switch (t) {
    case Type::Bool:
      return v.is_boolean();
    case Type::Int:
      return v.is_number_integer();
    case Type::Number:
      return v.is_number();
    case Type::String:
      return v.is_string();
    case Type::NumberList:
    case Type::StringList:
    case Type::ObjectList:
      return v.is_array();
    case Type::Map:
      return v.is_object();
  }
  return false;
}

bool in_range(const Range& r, double x) {
  if (std::isnan(x)) return false;
  bool lo = r.lo_open ? x > r.lo : x >= r.lo;
  bool hi = r.hi_open ? x < r.hi : x <= r.hi;
  return lo && hi;
}

std::string range_text(const Range& r) {
  const bool has_lo = r.lo != -std::numeric_limits<double>::infinity();
  const bool has_hi = r.hi != std::numeric_limits<double>::infinity();
  if (has_lo && has_hi)
    return std::string("in ") + (r.lo_open ? "(" : "[") + num(r.lo) + ", " + num(r.hi) + (r.hi_open ? ")" : "]");
  if (has_lo) return (r.lo_open ? "greater than " : "at least ") + num(r.lo);
  if (has_hi) return (r.hi_open ? "less than " : "at most ") + num(r.hi);
  return "";
}

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

std::string shown_value(const json& v) { return v.is_string() ? v.get<std::string>() : brief(v); }

}  // namespace

Key boolean(std::string path, bool def, std::string meaning) {
  return make(std::move(path), Type::Bool, def, std::move(meaning));
}

Key integer(std::string path, int64_t def, std::string meaning, Range r) {
  Key k = make(std::move(path), Type::Int, def, std::move(meaning));
  k.range = r;
  return k;
}

Key integer64(std::string path, int64_t def, std::string meaning, Range r) {
  Key k = integer(std::move(path), def, std::move(meaning), r);
  k.wide = true;
  return k;
}

Key integer_of(std::string path, int64_t def, std::string meaning, std::vector<int64_t> one_of) {
  Key k = make(std::move(path), Type::Int, def, std::move(meaning));
  for (int64_t v : one_of) k.one_of.emplace_back(v);
  return k;
}

Key number(std::string path, double def, std::string meaning, Range r) {
  Key k = make(std::move(path), Type::Number, def, std::move(meaning));
  k.range = r;
  return k;
}

Key number(std::string path, float def, std::string meaning, Range r) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, def);
  return number(std::move(path), std::stod(std::string(buf, res.ptr)), std::move(meaning), r);
}

Key string(std::string path, std::string def, std::string meaning, std::vector<std::string> one_of) {
  Key k = make(std::move(path), Type::String, def, std::move(meaning));
  for (auto& v : one_of) k.one_of.emplace_back(v);
  return k;
}

Key number_list(std::string path, std::vector<double> def, std::string meaning, Range elements) {
  Key k = make(std::move(path), Type::NumberList, def, std::move(meaning));
  k.range = elements;
  return k;
}

Key string_list(std::string path, std::vector<std::string> def, std::string meaning) {
  return make(std::move(path), Type::StringList, json(def), std::move(meaning));
}

Key map(std::string path, std::string meaning, std::shared_ptr<const KeySet> entry) {
  Key k = make(std::move(path), Type::Map, json::object(), std::move(meaning));
  k.entry = std::move(entry);
  return k;
}

Key object_list(std::string path, std::string meaning, std::shared_ptr<const KeySet> entry) {
  Key k = make(std::move(path), Type::ObjectList, json::array(), std::move(meaning));
  k.entry = std::move(entry);
  return k;
}

std::string type_name(Type t) {
  switch (t) {
    case Type::Bool:
      return "bool";
    case Type::Int:
      return "int";
    case Type::Number:
      return "number";
    case Type::String:
      return "string";
    case Type::NumberList:
      return "list of numbers";
    case Type::StringList:
      return "list of strings";
    case Type::Map:
      return "map";
    case Type::ObjectList:
      return "list of objects";
  }
  return "?";
}

std::string allowed(const Key& k) {
  if (!k.one_of.empty()) {
    std::string s = "one of: ";
    for (size_t i = 0; i < k.one_of.size(); ++i) s += (i ? ", " : "") + shown_value(k.one_of[i]);
    return s;
  }
  std::string r = range_text(k.range);
  if (k.type == Type::NumberList && !r.empty()) return "each " + r;
  if ((k.type == Type::Map || k.type == Type::ObjectList) && k.entry) {
    std::string s = "each entry sets: ";
    for (size_t i = 0; i < k.entry->keys().size(); ++i) s += (i ? ", " : "") + k.entry->keys()[i].path;
    return s;
  }
  return r;
}

KeySet::KeySet(std::vector<Key> keys) {
  for (auto& k : keys) add(std::move(k));
}

void KeySet::add(Key k) {
  QF_CHECK(!k.path.empty() && !find(k.path), "config key '" + k.path + "' declared twice (or empty)");
  keys_.push_back(std::move(k));
}

void KeySet::mount(const std::string& prefix, const KeySet& other) {
  for (Key k : other.keys_) {
    k.path = join(prefix, k.path);
    add(std::move(k));
  }
}

const Key* KeySet::find(const std::string& path) const {
  for (auto& k : keys_)
    if (k.path == path) return &k;
  return nullptr;
}

KeySet KeySet::under(const std::string& prefix) const {
  KeySet s;
  for (Key k : keys_)
    if (k.path.rfind(prefix + ".", 0) == 0) {
      k.path = k.path.substr(prefix.size() + 1);
      s.add(std::move(k));
    }
  return s;
}

json KeySet::defaults() const {
  json j = json::object();
  for (auto& k : keys_) {
    std::string ptr = "/" + k.path;
    std::replace(ptr.begin(), ptr.end(), '.', '/');
    j[json::json_pointer(ptr)] = k.def;
  }
  return j;
}

void KeySet::check(const Key& k, const json& v, const std::string& path, const std::string& source) {
  const std::string at = "key '" + path + "' in " + source;
  QF_CHECK(has_type(k.type, v),
           at + " must be " + with_article(k.type) + ", got " + kind_of(v) + " (" + brief(v) + ")");
  if (k.type == Type::StringList)
    for (auto& e : v) QF_CHECK(e.is_string(), at + " must hold strings, got " + brief(e));
  if (k.type == Type::NumberList)
    for (auto& e : v) {
      QF_CHECK(e.is_number(), at + " must hold numbers, got " + brief(e));
      QF_CHECK(in_range(k.range, e.get<double>()),
               at + " must hold numbers " + range_text(k.range) + ", got " + brief(e));
    }
  // 2^32 + 1 epochs would be read as 1 (and a batch size of 2^32 as 0) without this.
  if (k.type == Type::Int && !k.wide)
    QF_CHECK(v.is_number_unsigned() ? v.get<uint64_t>() <= INT32_MAX
                                    : v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX,
             at + " must fit in 32 bits (an int), got " + brief(v));
  if ((k.type == Type::Int || k.type == Type::Number) && k.range.bounded())
    QF_CHECK(in_range(k.range, v.get<double>()), at + " must be " + range_text(k.range) + ", got " + brief(v));
  if (!k.one_of.empty())
    QF_CHECK(std::find(k.one_of.begin(), k.one_of.end(), v) != k.one_of.end(),
             at + " must be " + allowed(k) + "; got " + brief(v));
}

void KeySet::merge(json& dst, const json& src, const std::string& shown, const std::string& source) const {
  QF_CHECK(src.is_object(), (shown.empty() ? source : "key '" + shown + "' in " + source) + " must be an object, got " +
                                kind_of(src) + " (" + brief(src) + ")");
  if (dst.is_null()) dst = json::object();
  merge_at(dst, src, "", shown, source);
}

void KeySet::merge_at(json& dst, const json& src, const std::string& rel, const std::string& shown,
                      const std::string& source) const {
  for (auto& [name, v] : src.items()) {
    // p is for messages: a name from the file may hold control characters (a NUL would cut it).
    const std::string r = join(rel, name), p = join(shown, printable(name));
    if (const Key* k = find(r)) {
      check(*k, v, p, source);
      if (k->type == Type::Map && k->entry) {
        for (auto& [entry, e] : v.items()) k->entry->merge(dst[name][entry], e, p + "." + printable(entry), source);
        if (dst[name].is_null()) dst[name] = json::object();
      } else if (k->type == Type::ObjectList && k->entry) {
        json list = json::array();
        for (size_t i = 0; i < v.size(); ++i) {
          json obj = json::object();
          k->entry->merge(obj, v[i], p + "[" + std::to_string(i) + "]", source);
          list.push_back(std::move(obj));
        }
        dst[name] = std::move(list);
      } else {
        dst[name] = v;
      }
      continue;
    }
    // A section: some key lies below r.
    std::vector<std::string> here;  // the names known at this level, in declaration order
    bool section = false;
    for (auto& k : keys_) {
      if (!rel.empty() && k.path.rfind(rel + ".", 0) != 0) continue;
      std::string rest = rel.empty() ? k.path : k.path.substr(rel.size() + 1);
      std::string first = rest.substr(0, rest.find('.'));
      if (std::find(here.begin(), here.end(), first) == here.end()) here.push_back(first);
      if (first == name) section = true;
    }
    if (!section) {
      std::string known;
      for (auto& h : here) known += (known.empty() ? "" : ", ") + h;
      throw Error("unknown key '" + p + "' in " + source + " (known here: " + known + ")");
    }
    QF_CHECK(v.is_object(),
             "key '" + p + "' in " + source + " must be an object, got " + kind_of(v) + " (" + brief(v) + ")");
    merge_at(dst[name], v, r, p, source);
  }
}

}  // namespace qforge::config
