// The one description of the config schema. Every config struct lists its fields once, in
// `visit(ConfigVisitor&)`; readers (YAML file, --set overrides), the writer (`config show`)
// and the key lister used for "did you mean" suggestions are all visitors over that list,
// so a field added in one place is read, validated, shown and suggested everywhere.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gopd::core {

// Allowed range of a numeric field, with the phrase used in error messages.
struct NumberRule {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_inclusive = true;
  bool max_inclusive = true;

  static NumberRule positive() {
    return {0.0, std::numeric_limits<double>::infinity(), false, true};
  }
  static NumberRule non_negative() {
    return {0.0, std::numeric_limits<double>::infinity(), true, true};
  }
  static NumberRule at_least(double low) {
    return {low, std::numeric_limits<double>::infinity(), true, true};
  }
  static NumberRule range(double low, double high, bool low_inclusive, bool high_inclusive) {
    return {low, high, low_inclusive, high_inclusive};
  }

  bool allows(double value) const;
  // "a positive number", "an integer >= 1", "a number in (0, 1]", ...
  std::string describe(bool integer) const;
};

// Allowed values of a string field: any non-empty text, possibly empty, or a fixed choice.
struct StringRule {
  std::vector<std::string> choices;  // empty = free text
  bool allow_empty = true;

  static StringRule any() { return {{}, true}; }
  static StringRule non_empty() { return {{}, false}; }
  static StringRule one_of(std::vector<std::string> values) { return {std::move(values), false}; }
};

struct TeacherConfig;

class ConfigVisitor {
 public:
  virtual ~ConfigVisitor() = default;
  virtual void field(const char* key, double& value, const NumberRule& rule) = 0;
  virtual void field(const char* key, std::optional<double>& value, const NumberRule& rule) = 0;
  virtual void field(const char* key, int64_t& value, const NumberRule& rule) = 0;
  virtual void field(const char* key, bool& value) = 0;
  virtual void field(const char* key, std::string& value, const StringRule& rule) = 0;
  virtual void field(const char* key, std::vector<std::string>& value) = 0;
  // A nested section whose fields `visit_fields` lists.
  virtual void section(const char* key,
                       const std::function<void(ConfigVisitor&)>& visit_fields) = 0;
  // The `teachers` map: user-chosen names → TeacherConfig.
  virtual void teachers(const char* key, std::map<std::string, TeacherConfig>& teachers) = 0;
};

template <class Section>
void visit_section(ConfigVisitor& visitor, const char* key, Section& section) {
  visitor.section(key, [&section](ConfigVisitor& inner) { section.visit(inner); });
}

// Thrown by validate(): a problem with the value at `key_path`. The loader turns it into an
// Error located at that key's `file:line:column` (or its --set override).
struct ConfigIssue {
  std::string key_path;
  std::string message;
};

[[noreturn]] inline void config_issue(std::string key_path, std::string message) {
  throw ConfigIssue{std::move(key_path), std::move(message)};
}

}  // namespace gopd::core
