// Implements Record's text view and its JSON form.
#include "gopd/data/record.h"

namespace gopd::data {

std::string Record::prompt_text() const {
  if (prompt.is_string()) return prompt.get<std::string>();
  std::string text;
  if (prompt.is_array()) {
    for (const auto& message : prompt) {
      if (!text.empty()) text += "\n";
      text += message.value("content", "");
    }
  }
  return text;
}

nlohmann::json to_json(const Record& record) {
  nlohmann::json object = nlohmann::json::object();
  if (!record.id.empty()) object["id"] = record.id;
  object["prompt"] = record.prompt;
  object["answer"] = record.answer;
  if (!record.teacher.empty()) object["teacher"] = record.teacher;
  if (!record.domain.empty()) object["domain"] = record.domain;
  if (!record.tests.is_null()) object["tests"] = record.tests;
  if (record.extra.is_object()) {
    for (const auto& [key, value] : record.extra.items()) object[key] = value;
  }
  return object;
}

}  // namespace gopd::data
