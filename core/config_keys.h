// Config keys: each key of a JSON config declared once, with its type, its
// default, what values it allows and a one-line meaning. A KeySet is a list of
// keys with dotted paths; it yields the defaults as a JSON object and merges a
// user's (partial) JSON into them, naming the key path and the source (a file
// or a --set) in every error. Libraries declare the keys they read (e.g.
// quant::qconfig_keys()); the application mounts them under a prefix.
//
//   KeySet ks{{integer("bins", 2048, "histogram bins", at_least(1))}};
//   json j = ks.defaults();                       // {"bins": 2048}
//   ks.merge(j, json{{"bins", 0}}, "", "x.json");  // Error: key 'bins' in x.json must be at least 1, got 0
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qforge::config {

enum class Type { Bool, Int, Number, String, NumberList, StringList, Map, ObjectList };

// An interval of numbers; the bounds are inclusive unless marked open.
struct Range {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  bool bounded() const {
    return lo != -std::numeric_limits<double>::infinity() || hi != std::numeric_limits<double>::infinity();
  }
};
inline Range at_least(double lo) { return {lo}; }
inline Range positive() { return {0, std::numeric_limits<double>::infinity(), true}; }
inline Range closed(double lo, double hi) { return {lo, hi}; }
inline Range open_closed(double lo, double hi) { return {lo, hi, true, false}; }
inline Range closed_open(double lo, double hi) { return {lo, hi, false, true}; }
inline Range open(double lo, double hi) { return {lo, hi, true, true}; }

class KeySet;

struct Key {
  std::string path;  // dotted, relative to where its KeySet is mounted
  Type type = Type::String;
  nlohmann::json def;  // the default
  std::string meaning;
  Range range;                         // numbers, and the elements of number lists
  std::vector<nlohmann::json> one_of;  // allowed values, when a short list
  // Map: each entry (keyed by the user's names) is a partial object of these keys; ObjectList: each element is.
  std::shared_ptr<const KeySet> entry;
  bool wide = false;  // Int: any 64-bit value (else it must fit an int, as the readers take it)
};

Key boolean(std::string path, bool def, std::string meaning);
// Integers are read as int: values must fit 32 bits. integer64 (a seed) takes any int64 or uint64.
Key integer(std::string path, int64_t def, std::string meaning, Range r = {});
Key integer64(std::string path, int64_t def, std::string meaning, Range r = {});
Key integer_of(std::string path, int64_t def, std::string meaning, std::vector<int64_t> one_of);
Key number(std::string path, double def, std::string meaning, Range r = {});
// A float default is stored as its shortest decimal (0.01f -> 0.01), which reads back as the same float.
Key number(std::string path, float def, std::string meaning, Range r = {});
Key string(std::string path, std::string def, std::string meaning, std::vector<std::string> one_of = {});
Key number_list(std::string path, std::vector<double> def, std::string meaning, Range elements = {});
Key string_list(std::string path, std::vector<std::string> def, std::string meaning);
Key map(std::string path, std::string meaning, std::shared_ptr<const KeySet> entry);
// A list of objects, in the user's order (default []); a --set replaces the whole list.
Key object_list(std::string path, std::string meaning, std::shared_ptr<const KeySet> entry);

std::string type_name(Type t);      // "int", "number", "list of strings", ...
std::string allowed(const Key& k);  // "at least 1", "in (0, 1]", "one of: a, b", or ""

class KeySet {
 public:
  KeySet() = default;
  KeySet(std::vector<Key> keys);
  // Appends `other`'s keys with `prefix` + "." before their paths.
  void mount(const std::string& prefix, const KeySet& other);
  void add(Key k);

  const std::vector<Key>& keys() const { return keys_; }
  const Key* find(const std::string& path) const;
  // The keys whose paths start with `prefix` + "." (or all for ""), with the prefix removed.
  KeySet under(const std::string& prefix) const;

  // Every key at its default, nested by path ({"a": {"b": 1}} for "a.b").
  nlohmann::json defaults() const;
  // Merges src (an object at this set's root) into dst, checking names, types, ranges and allowed
  // values. `shown` is src's place in the whole config, for messages ("quant.overrides.fc");
  // `source` names where src came from ("configs/x.json", "--set a.b=1").
  void merge(nlohmann::json& dst, const nlohmann::json& src, const std::string& shown, const std::string& source) const;
  // Throws unless v is a valid value of k; `path` is the key's full path for the message.
  static void check(const Key& k, const nlohmann::json& v, const std::string& path, const std::string& source);

 private:
  void merge_at(nlohmann::json& dst, const nlohmann::json& src, const std::string& rel, const std::string& shown,
                const std::string& source) const;
  std::vector<Key> keys_;
};

}  // namespace qforge::config
