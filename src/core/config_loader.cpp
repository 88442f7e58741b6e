// Reads YAML into the typed Config through the schema visitors, applies --set overrides,
// and writes the resolved config back as YAML. Error messages carry the location of the
// offending key or value (yaml-cpp marks are 0-based; we print 1-based line:column).
#include "gopd/core/config_loader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "gopd/core/error.h"

namespace gopd::core {
namespace {

std::string join_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

int64_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<int64_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int64_t diagonal = row[0];
    row[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Text of a scalar as the user wrote it, for "got ..." in messages: numbers bare, anything
// else quoted.
std::string describe_found(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing (null)";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  const std::string& text = node.Scalar();
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  if (!text.empty() && end == text.c_str() + text.size()) return text;
  return "\"" + text + "\"";
}

std::string format_double(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, result.ptr);
  // Keep floats recognisable as floats in YAML ("1" would read back fine, but "1.0" says more).
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

// Lists the keys of one level (sections and teachers count as keys, not descended into).
class KeyLister : public ConfigVisitor {
 public:
  std::vector<std::string> keys;
  void field(const char* key, double&, const NumberRule&) override { keys.push_back(key); }
  void field(const char* key, std::optional<double>&, const NumberRule&) override {
    keys.push_back(key);
  }
  void field(const char* key, int64_t&, const NumberRule&) override { keys.push_back(key); }
  void field(const char* key, bool&) override { keys.push_back(key); }
  void field(const char* key, std::string&, const StringRule&) override { keys.push_back(key); }
  void field(const char* key, std::vector<std::string>&) override { keys.push_back(key); }
  void section(const char* key, const std::function<void(ConfigVisitor&)>&) override {
    keys.push_back(key);
  }
  void teachers(const char* key, std::map<std::string, TeacherConfig>&) override {
    keys.push_back(key);
  }
};

// Lists full key paths, descending into sections.
class PathLister : public ConfigVisitor {
 public:
  explicit PathLister(std::string prefix, std::vector<std::string>* paths)
      : prefix_(std::move(prefix)), paths_(paths) {}
  void field(const char* key, double&, const NumberRule&) override { add(key); }
  void field(const char* key, std::optional<double>&, const NumberRule&) override { add(key); }
  void field(const char* key, int64_t&, const NumberRule&) override { add(key); }
  void field(const char* key, bool&) override { add(key); }
  void field(const char* key, std::string&, const StringRule&) override { add(key); }
  void field(const char* key, std::vector<std::string>&) override { add(key); }
  void section(const char* key, const std::function<void(ConfigVisitor&)>& visit_fields) override {
    PathLister inner(join_path(prefix_, key), paths_);
    visit_fields(inner);
  }
  void teachers(const char* key, std::map<std::string, TeacherConfig>&) override {
    TeacherConfig teacher;
    PathLister inner(join_path(prefix_, key) + ".*", paths_);
    teacher.visit(inner);
  }

 private:
  void add(const char* key) { paths_->push_back(join_path(prefix_, key)); }
  std::string prefix_;
  std::vector<std::string>* paths_;
};

std::vector<std::string> all_key_paths() {
  Config config;
  std::vector<std::string> paths;
  PathLister lister("", &paths);
  config.visit(lister);
  return paths;
}

// Where values came from, for error messages.
class LoadContext {
 public:
  explicit LoadContext(std::string source) : source_(std::move(source)) {}

  void add_override(const std::string& key_path, const std::string& label) {
    override_labels_[key_path] = label;
  }
  void remember(const std::string& key_path, const YAML::Mark& mark) {
    if (!mark.is_null()) marks_[key_path] = mark;
  }

  // `file:line:column` of the value (or key) at `key_path`, the --set override that set it,
  // or the nearest enclosing key that has a location, or the file name.
  std::string locate(const std::string& key_path, const YAML::Mark& mark) const {
    std::string best_label;
    size_t best_length = 0;
    for (const auto& [prefix, label] : override_labels_) {
      const bool covers = key_path == prefix || (key_path.size() > prefix.size() &&
                                                 key_path.compare(0, prefix.size(), prefix) == 0 &&
                                                 key_path[prefix.size()] == '.');
      if (covers && prefix.size() >= best_length) best_label = label, best_length = prefix.size();
    }
    if (!best_label.empty()) return best_label;
    if (!mark.is_null()) return at(mark);
    // A node without a mark was created by an override that wrote below it
    // (`--set optim.lr.x=1` turns optim.lr into a mapping).
    for (const auto& [path, label] : override_labels_) {
      if (path.size() > key_path.size() && path.compare(0, key_path.size(), key_path) == 0 &&
          path[key_path.size()] == '.' && !marks_.count(key_path)) {
        return label;
      }
    }
    std::string path = key_path;
    while (!path.empty()) {
      if (const auto found = marks_.find(path); found != marks_.end()) return at(found->second);
      const size_t dot = path.rfind('.');
      path = dot == std::string::npos ? "" : path.substr(0, dot);
    }
    return source_;
  }

  [[noreturn]] void fail(const std::string& key_path, const YAML::Mark& mark,
                         const std::string& message) const {
    const std::string where = locate(key_path, mark);
    throw_bad_input(where + ": " + (key_path.empty() ? "" : key_path + ": ") + message);
  }

  const std::string& source() const { return source_; }

 private:
  std::string at(const YAML::Mark& mark) const {
    return source_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }

  std::string source_;
  std::map<std::string, std::string> override_labels_;
  std::map<std::string, YAML::Mark> marks_;
};

std::string suggest(const std::string& unknown, const std::vector<std::string>& known) {
  std::string best;
  int64_t best_distance = INT64_MAX;
  for (const std::string& candidate : known) {
    const int64_t distance = edit_distance(unknown, candidate);
    if (distance < best_distance) best = candidate, best_distance = distance;
  }
  const int64_t allowed = std::max<int64_t>(1, static_cast<int64_t>(unknown.size()) / 3);
  if (best_distance <= allowed) return best;
  // "optimizer" → "optim", "temp" → "temperature": one is a prefix of the other.
  for (const std::string& candidate : known) {
    const size_t shorter = std::min(candidate.size(), unknown.size());
    if (shorter >= 3 && candidate.compare(0, shorter, unknown, 0, shorter) == 0) return candidate;
  }
  return "";
}

// Rejects keys the schema does not list at this level (and duplicates), with a suggestion.
void check_keys(const LoadContext& context, const YAML::Node& node, const std::string& prefix,
                const std::vector<std::string>& known) {
  std::set<std::string> seen;
  for (const auto& item : node) {
    const YAML::Node& key_node = item.first;
    const std::string key = key_node.IsScalar() ? key_node.Scalar() : "?";
    const std::string path = join_path(prefix, key);
    if (!key_node.IsScalar()) context.fail(prefix, key_node.Mark(), "keys must be plain names");
    if (!seen.insert(key).second) context.fail(path, key_node.Mark(), "duplicate key");
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string hint;
    if (const std::string close = suggest(key, known); !close.empty()) {
      hint = "; did you mean " + join_path(prefix, close) + "?";
    } else {
      // The same name in another section ("optim.temperature" → "rollout.temperature").
      for (const std::string& other : all_key_paths()) {
        const size_t dot = other.rfind('.');
        if (dot != std::string::npos && other.substr(dot + 1) == key &&
            other.find('*') == std::string::npos) {
          hint = "; did you mean " + other + "?";
          break;
        }
      }
      if (hint.empty()) {
        hint = "; expected one of: ";
        for (size_t i = 0; i < known.size(); ++i) hint += (i ? ", " : "") + known[i];
      }
    }
    context.fail(path, key_node.Mark(), "unknown key" + hint);
  }
}

// Reads one mapping level into the fields a struct's visit() lists.
class YamlReader : public ConfigVisitor {
 public:
  YamlReader(LoadContext& context, YAML::Node node, std::string prefix)
      : context_(context), node_(std::move(node)), prefix_(std::move(prefix)) {}

  void field(const char* key, double& value, const NumberRule& rule) override {
    const YAML::Node found = lookup(key);
    if (!found.IsDefined()) return;
    value = parse_number(key, found, rule, false);
  }

  void field(const char* key, std::optional<double>& value, const NumberRule& rule) override {
    const YAML::Node found = lookup(key);
    if (!found.IsDefined()) return;
    if (found.IsNull()) {
      value.reset();
      return;
    }
    value = parse_number(key, found, rule, false);
  }

  void field(const char* key, int64_t& value, const NumberRule& rule) override {
    const YAML::Node found = lookup(key);
    if (!found.IsDefined()) return;
    value = static_cast<int64_t>(parse_number(key, found, rule, true));
  }

  void field(const char* key, bool& value) override {
    const YAML::Node found = lookup(key);
    if (!found.IsDefined()) return;
    std::string text = found.IsScalar() ? found.Scalar() : "";
    std::transform(text.begin(), text.end(), text.begin(), ::tolower);
    if (text == "true" || text == "yes" || text == "on") {
      value = true;
    } else if (text == "false" || text == "no" || text == "off") {
      value = false;
    } else {
      fail(key, found, "expected true or false, got " + describe_found(found));
    }
  }

  void field(const char* key, std::string& value, const StringRule& rule) override {
    const YAML::Node found = lookup(key);
    if (!found.IsDefined()) return;
    std::string text;
    if (found.IsScalar()) {
      text = found.Scalar();
    } else if (!found.IsNull()) {
      fail(key, found, "expected " + expectation(rule) + ", got " + describe_found(found));
    }
    if (!rule.choices.empty()) {
      if (std::find(rule.choices.begin(), rule.choices.end(), text) == rule.choices.end()) {
        std::string message = "expected " + expectation(rule) + ", got " + describe_found(found);
        if (const std::string close = suggest(text, rule.choices);
            !close.empty() && !text.empty()) {
          message += " (did you mean " + close + "?)";
        }
        fail(key, found, message);
      }
    } else if (text.empty() && !rule.allow_empty) {
      fail(key, found, "expected a non-empty string, got " + describe_found(found));
    }
    value = text;
  }

  void field(const char* key, std::vector<std::string>& value) override {
    const YAML::Node found = lookup(key);
    if (!found.IsDefined()) return;
    value.clear();
    if (found.IsNull()) return;
    if (found.IsScalar()) {  // a single string is a one-element list
      value.push_back(found.Scalar());
      return;
    }
    if (!found.IsSequence()) fail(key, found, "expected a list of strings, got a mapping");
    for (size_t i = 0; i < found.size(); ++i) {
      const YAML::Node item = found[i];
      if (!item.IsScalar()) {
        context_.fail(join_path(prefix_, key) + "[" + std::to_string(i) + "]", item.Mark(),
                      "expected a string, got " + describe_found(item));
      }
      value.push_back(item.Scalar());
    }
  }

  void section(const char* key, const std::function<void(ConfigVisitor&)>& visit_fields) override {
    const YAML::Node found = lookup(key);
    read_mapping(context_, found, join_path(prefix_, key), visit_fields);
  }

  void teachers(const char* key, std::map<std::string, TeacherConfig>& teachers) override {
    const YAML::Node found = lookup(key);
    if (!found.IsDefined() || found.IsNull()) return;
    const std::string path = join_path(prefix_, key);
    if (!found.IsMap()) {
      fail(key, found,
           "expected a mapping of teacher names to {path or url, lambda, reference}, got " +
               describe_found(found));
    }
    teachers.clear();
    for (const auto& item : found) {
      const std::string name = item.first.Scalar();
      const std::string teacher_path = join_path(path, name);
      const bool valid_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      });
      if (!valid_name) {
        context_.fail(teacher_path, item.first.Mark(),
                      "a teacher name uses letters, digits, '_' and '-' only");
      }
      TeacherConfig teacher;
      if (item.second.IsScalar()) {  // shorthand: `math: /models/math-teacher` (or an http URL)
        const std::string value = item.second.Scalar();
        const bool served = value.rfind("http://", 0) == 0 || value.rfind("https://", 0) == 0;
        (served ? teacher.remote.url : teacher.path) = value;
        context_.remember(teacher_path, item.second.Mark());
      } else {
        read_mapping(context_, item.second, teacher_path,
                     [&teacher](ConfigVisitor& inner) { teacher.visit(inner); });
        if (teacher.path.empty() == teacher.remote.url.empty()) {
          context_.fail(teacher_path + ".path", item.second.Mark(),
                        teacher.path.empty()
                            ? "required: the teacher model directory (path) or a served "
                              "teacher's address (url)"
                            : "give path (a model directory) or url (a served teacher), not both");
        }
      }
      teachers[name] = teacher;
    }
  }

  static void read_mapping(LoadContext& context, const YAML::Node& node, const std::string& path,
                           const std::function<void(ConfigVisitor&)>& visit_fields) {
    if (!node.IsDefined() || node.IsNull()) return;  // absent or empty section: defaults
    if (!node.IsMap()) {
      context.fail(path, node.Mark(), "expected a mapping of keys, got " + describe_found(node));
    }
    KeyLister lister;
    visit_fields(lister);
    check_keys(context, node, path, lister.keys);
    YamlReader reader(context, node, path);
    visit_fields(reader);
  }

 private:
  YAML::Node lookup(const char* key) {
    const YAML::Node& node = node_;  // const access never inserts
    YAML::Node found = node[key];
    if (found.IsDefined()) context_.remember(join_path(prefix_, key), found.Mark());
    return found;
  }

  [[noreturn]] void fail(const char* key, const YAML::Node& found, const std::string& message) {
    context_.fail(join_path(prefix_, key), found.Mark(), message);
  }

  static std::string expectation(const StringRule& rule) {
    if (rule.choices.empty()) return rule.allow_empty ? "a string" : "a non-empty string";
    std::string text = "one of ";
    for (size_t i = 0; i < rule.choices.size(); ++i) text += (i ? ", " : "") + rule.choices[i];
    return text;
  }

  double parse_number(const char* key, const YAML::Node& found, const NumberRule& rule,
                      bool integer) {
    const std::string expected = "expected " + rule.describe(integer) + ", got ";
    if (!found.IsScalar()) fail(key, found, expected + describe_found(found));
    const std::string& text = found.Scalar();
    double value = 0;
    bool parsed = false;
    if (integer) {
      char* end = nullptr;
      errno = 0;
      const long long whole = std::strtoll(text.c_str(), &end, 10);
      parsed = !text.empty() && end == text.c_str() + text.size() && errno == 0;
      value = static_cast<double>(whole);
    } else {
      char* end = nullptr;
      value = std::strtod(text.c_str(), &end);
      parsed = !text.empty() && end == text.c_str() + text.size() && std::isfinite(value);
    }
    if (!parsed || !rule.allows(value)) fail(key, found, expected + describe_found(found));
    return value;
  }

  LoadContext& context_;
  YAML::Node node_;
  std::string prefix_;
};

// Writes every field in schema order.
class YamlWriter : public ConfigVisitor {
 public:
  explicit YamlWriter(YAML::Emitter& out) : out_(out) {}
  void field(const char* key, double& value, const NumberRule&) override {
    out_ << YAML::Key << key << YAML::Value << format_double(value);
  }
  void field(const char* key, std::optional<double>& value, const NumberRule&) override {
    out_ << YAML::Key << key << YAML::Value;
    if (value) {
      out_ << format_double(*value);
    } else {
      out_ << YAML::Null;
    }
  }
  void field(const char* key, int64_t& value, const NumberRule&) override {
    out_ << YAML::Key << key << YAML::Value << value;
  }
  void field(const char* key, bool& value) override {
    out_ << YAML::Key << key << YAML::Value << value;
  }
  void field(const char* key, std::string& value, const StringRule&) override {
    out_ << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
  }
  void field(const char* key, std::vector<std::string>& value) override {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const std::string& item : value) out_ << YAML::DoubleQuoted << item;
    out_ << YAML::EndSeq;
  }
  void section(const char* key, const std::function<void(ConfigVisitor&)>& visit_fields) override {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    visit_fields(*this);
    out_ << YAML::EndMap;
  }
  void teachers(const char* key, std::map<std::string, TeacherConfig>& teachers) override {
    out_ << YAML::Key << key << YAML::Value;
    if (teachers.empty()) {
      out_ << YAML::Flow << YAML::BeginMap << YAML::EndMap;
      return;
    }
    out_ << YAML::BeginMap;
    for (auto& [name, teacher] : teachers) {
      out_ << YAML::Key << name << YAML::Value << YAML::BeginMap;
      teacher.visit(*this);
      out_ << YAML::EndMap;
    }
    out_ << YAML::EndMap;
  }

 private:
  YAML::Emitter& out_;
};

// Applies one "key.path=value" override to the YAML tree.
void apply_override(YAML::Node& root, const std::string& spec, LoadContext& context) {
  const std::string label = "--set " + spec;
  const size_t equals = spec.find('=');
  if (equals == std::string::npos || equals == 0) {
    throw_bad_input(label + ": expected key.path=value, e.g. --set optim.lr=3e-4");
  }
  const std::string key_path = spec.substr(0, equals);
  std::vector<std::string> keys;
  std::stringstream stream(key_path);
  for (std::string key; std::getline(stream, key, '.');) {
    if (key.empty()) throw_bad_input(label + ": empty key in \"" + key_path + "\"");
    keys.push_back(key);
  }
  if (key_path.back() == '.') throw_bad_input(label + ": empty key in \"" + key_path + "\"");
  YAML::Node value;
  try {
    value = YAML::Load(spec.substr(equals + 1));
  } catch (const YAML::Exception& error) {
    throw_bad_input(label + ": the value is not valid YAML: " + error.msg);
  }
  YAML::Node current;
  current.reset(root);
  std::string walked;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    walked = join_path(walked, keys[i]);
    YAML::Node next = current[keys[i]];
    if (!next.IsDefined() || next.IsNull()) {
      next = YAML::Node(YAML::NodeType::Map);
      current[keys[i]] = next;
      next.reset(current[keys[i]]);
    } else if (!next.IsMap()) {
      throw_bad_input(label + ": " + walked + " is a value, not a section");
    }
    current.reset(next);
  }
  current[keys.back()] = value;
  context.add_override(key_path, label);
}

Config read_config(const YAML::Node& root, LoadContext& context) {
  Config config;
  YamlReader::read_mapping(context, root, "",
                           [&config](ConfigVisitor& visitor) { config.visit(visitor); });
  config.resolve();
  try {
    config.validate();
  } catch (const ConfigIssue& issue) {
    context.fail(issue.key_path, YAML::Mark::null_mark(), issue.message);
  }
  return config;
}

}  // namespace

Config load_config_text(const std::string& yaml_text, const std::string& source_name,
                        const std::vector<std::string>& overrides) {
  LoadContext context(source_name);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& error) {
    throw_bad_input(source_name + ":" + std::to_string(error.mark.line + 1) + ":" +
                    std::to_string(error.mark.column + 1) + ": invalid YAML: " + error.msg);
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) {
    context.fail("", root.Mark(),
                 "expected a mapping of sections at the top level, got " + describe_found(root));
  }
  for (const std::string& spec : overrides) apply_override(root, spec, context);
  return read_config(root, context);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream input(path, std::ios::binary);
  if (!input) throw_bad_input(path + ": cannot open config file");
  std::stringstream text;
  text << input.rdbuf();
  return load_config_text(text.str(), path, overrides);
}

std::string config_to_yaml(Config config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  YamlWriter writer(out);
  config.visit(writer);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<std::string> config_key_paths() { return all_key_paths(); }

}  // namespace gopd::core
