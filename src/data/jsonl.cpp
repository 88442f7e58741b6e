// Implements the JSONL reader/writer and dataset-record validation.
#include "gopd/data/jsonl.h"

#include <fstream>

#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/core/utf8.h"

namespace gopd::data {
namespace {

using core::throw_bad_input;

bool is_blank(const std::string& text) {
  return text.find_first_not_of(" \t\r\n") == std::string::npos;
}

std::string type_name(const nlohmann::json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  return "an object";
}

// Optional string field; numbers are accepted for `answer` and `id` (gold answers are
// often stored as numbers) and converted to their JSON text.
std::string string_field(const nlohmann::json& object, const char* key, const std::string& source,
                         bool allow_number) {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return "";
  if (found->is_string()) return found->get<std::string>();
  if (allow_number && found->is_number()) return found->dump();
  throw_bad_input(source + ": field \"" + key + "\": expected a string" +
                  (allow_number ? " or a number" : "") + ", got " + type_name(*found));
}

}  // namespace

std::vector<JsonlLine> read_jsonl(const std::string& path) {
  std::ifstream input(path, std::ios::binary);
  if (!input) throw_bad_input(path + ": cannot open file");
  std::vector<JsonlLine> lines;
  std::string text;
  int64_t line_number = 0;
  while (std::getline(input, text)) {
    ++line_number;
    if (is_blank(text)) continue;
    const std::string source = path + ":" + std::to_string(line_number);
    if (const auto bad = core::find_invalid_utf8(text)) {
      throw_bad_input(source + ": invalid UTF-8 at byte " + std::to_string(*bad + 1) +
                      " of the line");
    }
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& error) {
      // nlohmann's byte position is 1-based within the parsed text.
      throw_bad_input(source + ": malformed JSON at column " + std::to_string(error.byte) +
                      ": expected one JSON object per line");
    } catch (const nlohmann::json::exception& error) {
      // out_of_range: a number too large for a double ("1e999").
      throw_bad_input(source + ": malformed JSON: " + error.what());
    }
    if (!value.is_object()) {
      throw_bad_input(source + ": expected a JSON object, got " + type_name(value));
    }
    lines.push_back({std::move(value), line_number});
  }
  if (input.bad()) core::throw_runtime_failure(path + ": read error");
  return lines;
}

Record record_from_json(const nlohmann::json& object, const std::string& source, int64_t line) {
  Record record;
  record.source = source;
  record.line = line;
  const auto prompt = object.find("prompt");
  if (prompt == object.end()) throw_bad_input(source + ": missing field \"prompt\"");
  if (prompt->is_string()) {
    if (prompt->get<std::string>().empty()) throw_bad_input(source + ": field \"prompt\" is empty");
  } else if (prompt->is_array()) {
    if (prompt->empty()) throw_bad_input(source + ": field \"prompt\" has no messages");
    for (size_t i = 0; i < prompt->size(); ++i) {
      const auto& message = (*prompt)[i];
      const std::string where = source + ": prompt[" + std::to_string(i) + "]";
      if (!message.is_object()) throw_bad_input(where + ": expected a {role, content} object");
      for (const char* key : {"role", "content"}) {
        const auto field = message.find(key);
        if (field == message.end() || !field->is_string()) {
          throw_bad_input(where + ": expected a string field \"" + key + "\"");
        }
      }
    }
  } else {
    throw_bad_input(source +
                    ": field \"prompt\": expected a string or an array of chat messages, got " +
                    type_name(*prompt));
  }
  record.prompt = *prompt;
  record.id = string_field(object, "id", source, true);
  record.answer = string_field(object, "answer", source, true);
  record.teacher = string_field(object, "teacher", source, false);
  record.domain = string_field(object, "domain", source, false);
  if (const auto tests = object.find("tests"); tests != object.end() && !tests->is_null()) {
    if (!tests->is_object() && !tests->is_array()) {
      throw_bad_input(source + ": field \"tests\": expected an object or an array, got " +
                      type_name(*tests));
    }
    record.tests = *tests;
  }
  record.extra = nlohmann::json::object();
  for (const auto& [key, value] : object.items()) {
    if (key != "id" && key != "prompt" && key != "answer" && key != "teacher" && key != "domain" &&
        key != "tests") {
      record.extra[key] = value;
    }
  }
  return record;
}

std::vector<Record> read_dataset(const std::string& path) {
  std::vector<Record> records;
  for (const JsonlLine& line : read_jsonl(path)) {
    records.push_back(
        record_from_json(line.value, path + ":" + std::to_string(line.line), line.line));
  }
  if (records.empty()) throw_bad_input(path + ": dataset has no records");
  return records;
}

void write_jsonl(const std::string& path, const std::vector<nlohmann::json>& lines) {
  core::AtomicFileWriter writer(path);
  for (const auto& line : lines) writer.stream() << line.dump() << '\n';
  writer.commit();
}

}  // namespace gopd::data
