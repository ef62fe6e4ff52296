#include "data/class_match.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace qforge::data {
namespace {

bool is_separator(char c) { return c == ' ' || c == '_' || c == '-' || c == '/' || c == '\\'; }

std::string quoted_list(const std::vector<std::string>& names) {
  constexpr size_t kMaxShown = 30;
  std::string s = "[";
  for (size_t i = 0; i < names.size() && i < kMaxShown; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > kMaxShown) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s + "]";
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// The model class `name` stands for (exactly, else by key), or -1; throws when several share its key.
int find_class(const std::vector<std::string>& classes, const std::string& name, const std::string& what,
               const std::string& context) {
  for (size_t c = 0; c < classes.size(); ++c)
    if (classes[c] == name) return static_cast<int>(c);
  const std::string key = class_key(name);
  if (key.empty()) return -1;
  std::vector<std::string> hits;
  int found = -1;
  for (size_t c = 0; c < classes.size(); ++c)
    if (class_key(classes[c]) == key) {
      hits.push_back(classes[c]);
      found = static_cast<int>(c);
    }
  if (hits.size() > 1)
    throw Error(what + ": " + context + " matches several model classes by name " + quoted_list(hits) +
                "; say which in a class map");
  return found;
}

}  // namespace

std::string class_key(const std::string& name) {
  size_t start = 0;
  while (start < name.size() && std::isdigit(static_cast<unsigned char>(name[start]))) ++start;
  // A numeric prefix is digits, a separator, then something more ("00_T-shirt_top", not "3" or "10_").
  const bool prefix = start > 0 && start + 1 < name.size() &&
                      (name[start] == '_' || name[start] == '-' || name[start] == '.' || name[start] == ' ');
  std::string key;
  for (size_t i = prefix ? start + 1 : 0; i < name.size(); ++i) {
    char c = name[i];
    if (is_separator(c)) continue;
    key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return key;
}

ClassMap read_class_map(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  QF_CHECK(f, path + ": cannot open class map");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  ClassMap map;
  auto add = [&](const std::string& folder, const std::string& cls, const std::string& where) {
    QF_CHECK(!folder.empty(), where + ": empty folder name");
    QF_CHECK(!cls.empty(), where + ": empty class name for folder '" + folder + "'");
    for (auto& [f0, c0] : map) QF_CHECK(f0 != folder, where + ": folder '" + folder + "' is mapped twice");
    map.emplace_back(folder, cls);
  };
  const std::string t = trim(text);
  if (!t.empty() && t[0] == '{') {
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(t);
    } catch (const std::exception& e) {
      throw Error(path + ": class map is not valid JSON: " + e.what());
    }
    for (auto& [k, v] : j.items()) {
      QF_CHECK(v.is_string(),
               path + ": class map entry '" + k + "' must be a string (the model's class name), got " + v.dump());
      add(k, v.get<std::string>(), path);
    }
    return map;
  }
  std::istringstream lines(text);
  std::string line;
  for (int n = 1; std::getline(lines, line); ++n) {
    const std::string l = trim(line);
    if (l.empty() || l[0] == '#') continue;
    const std::string where = path + ":" + std::to_string(n);
    const size_t eq = l.find('=');
    QF_CHECK(eq != std::string::npos, where + ": expected folder=class, got '" + l + "'");
    add(trim(l.substr(0, eq)), trim(l.substr(eq + 1)), where);
  }
  return map;
}

std::vector<int> match_class_names(const std::vector<std::string>& model_classes,
                                   const std::vector<std::string>& data_classes, const ClassMap& map,
                                   const std::string& what, const std::string& hint) {
  std::vector<int> label(data_classes.size(), -1);
  std::vector<bool> by_map(data_classes.size(), false);
  for (size_t f = 0; f < data_classes.size(); ++f) {
    const std::string& folder = data_classes[f];
    // The map's entry: the folder's own name first, else one entry with the folder's key.
    const std::pair<std::string, std::string>* entry = nullptr;
    for (auto& e : map)
      if (e.first == folder) entry = &e;
    if (!entry && !class_key(folder).empty()) {
      std::vector<std::string> keys;
      for (auto& e : map)
        if (class_key(e.first) == class_key(folder)) {
          entry = &e;
          keys.push_back(e.first);
        }
      if (keys.size() > 1)
        throw Error(what + ": folder '" + folder + "' matches several class-map entries by name " + quoted_list(keys));
    }
    if (entry) {
      label[f] = find_class(model_classes, entry->second, what, "class-map entry '" + entry->first + "'");
      if (label[f] < 0)
        throw Error(what + ": the class map maps folder '" + folder + "' to '" + entry->second +
                    "', which is not a class of the model " + quoted_list(model_classes));
      by_map[f] = true;
    } else {
      label[f] = find_class(model_classes, folder, what, "folder '" + folder + "'");
    }
  }

  std::vector<std::string> lost_folders, lost_classes;
  std::vector<bool> used(model_classes.size(), false);
  for (size_t f = 0; f < data_classes.size(); ++f)
    if (label[f] < 0)
      lost_folders.push_back(data_classes[f]);
    else
      used[label[f]] = true;
  for (size_t c = 0; c < model_classes.size(); ++c)
    if (!used[c]) lost_classes.push_back(model_classes[c]);
  if (!lost_folders.empty()) {
    std::string msg = what + ": " + std::to_string(lost_folders.size()) + " of " + std::to_string(data_classes.size()) +
                      " folders match no class of the model by name: " + quoted_list(lost_folders) +
                      "; model classes without a folder: " + quoted_list(lost_classes) +
                      " (names are compared ignoring case, spaces, '_', '-', '/' and a numeric prefix)";
    if (!hint.empty()) msg += "; " + hint;
    throw Error(msg);
  }
  // Two folders on one class only when the class map says so.
  for (size_t c = 0; c < model_classes.size(); ++c) {
    std::vector<std::string> on;
    bool all_mapped = true;
    for (size_t f = 0; f < data_classes.size(); ++f)
      if (label[f] == static_cast<int>(c)) {
        on.push_back(data_classes[f]);
        all_mapped = all_mapped && by_map[f];
      }
    if (on.size() > 1 && !all_mapped)
      throw Error(what + ": folders " + quoted_list(on) + " all match the model's class '" + model_classes[c] +
                  "' by name; which is it? Rename them, or map each in a class map");
  }
  return label;
}

namespace {

class Relabelled final : public Dataset {
 public:
  Relabelled(std::shared_ptr<const Dataset> ds, std::vector<std::string> classes, std::vector<int> mapping)
      : ds_(std::move(ds)), classes_(std::move(classes)), mapping_(std::move(mapping)) {}
  size_t size() const override { return ds_->size(); }
  ImageSpec spec() const override { return ds_->spec(); }
  const std::vector<std::string>& classes() const override { return classes_; }
  int label(size_t i) const override { return mapping_[ds_->label(i)]; }
  void get(size_t i, uint8_t* out) const override { ds_->get(i, out); }
  ImageSpec get_sized(size_t i, std::vector<uint8_t>& out) const override { return ds_->get_sized(i, out); }
  std::string describe(size_t i) const override { return ds_->describe(i); }

 private:
  std::shared_ptr<const Dataset> ds_;
  std::vector<std::string> classes_;
  std::vector<int> mapping_;
};

}  // namespace

std::shared_ptr<const Dataset> relabel(std::shared_ptr<const Dataset> ds, std::vector<std::string> model_classes,
                                       std::vector<int> mapping) {
  QF_CHECK(ds != nullptr, "relabel: dataset is null");
  QF_CHECK(mapping.size() == ds->classes().size(), "relabel: " + std::to_string(mapping.size()) +
                                                       " labels for a dataset of " +
                                                       std::to_string(ds->classes().size()) + " classes");
  for (int m : mapping)
    QF_CHECK(m >= 0 && m < static_cast<int>(model_classes.size()),
             "relabel: label " + std::to_string(m) + " outside the " + std::to_string(model_classes.size()) +
                 " model classes");
  return std::make_shared<Relabelled>(std::move(ds), std::move(model_classes), std::move(mapping));
}

std::shared_ptr<const Dataset> match_classes(const std::vector<std::string>& model_classes,
                                             std::shared_ptr<const Dataset> ds, const std::string& what,
                                             const ClassMap& map, const std::string& hint) {
  QF_CHECK(ds != nullptr, "match_classes: dataset is null");
  if (map.empty() && ds->classes() == model_classes) return ds;
  std::vector<int> mapping = match_class_names(model_classes, ds->classes(), map, what, hint);
  return relabel(std::move(ds), model_classes, std::move(mapping));
}

}  // namespace qforge::data
