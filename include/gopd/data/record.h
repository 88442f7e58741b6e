// One dataset record (DESIGN.md, "File formats"): a JSONL line with a prompt (a string or
// a list of chat messages), the gold answer, optional routing fields and code tests. Fields
// gopd does not know are kept in `extra` and written back unchanged.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace gopd::data {

struct Record {
  std::string id;
  nlohmann::json prompt;  // string, or array of {"role", "content"} messages
  std::string answer;     // gold final answer ("" when the record has none)
  std::string teacher;    // routing key for multi-teacher distillation ("" = default)
  std::string domain;     // "math", "code", ... ("" = unknown)
  nlohmann::json tests;   // code tests (null when absent)
  nlohmann::json extra;   // every other field of the line, as an object
  std::string source;     // "file:line" it came from, for error messages
  int64_t line = 0;       // 1-based line number in its file (0 = generated)

  // The prompt as plain text: the string itself, or the messages' contents joined by "\n".
  std::string prompt_text() const;
};

// JSON object for one line: the known fields and `extra` (not `source`/`line`), keys sorted.
nlohmann::json to_json(const Record& record);

}  // namespace gopd::data
