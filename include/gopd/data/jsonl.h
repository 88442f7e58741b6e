// JSONL files: the dataset reader (DESIGN.md, "File formats") and an atomic JSONL writer.
// Every line must be one JSON object; blank lines are skipped; a malformed line, invalid
// UTF-8 or a field of the wrong type is an error naming `file:line` (exit code 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gopd/data/record.h"

namespace gopd::data {

struct JsonlLine {
  nlohmann::json value;  // always an object
  int64_t line = 0;      // 1-based line number
};

// Reads every non-blank line of `path` as a JSON object.
std::vector<JsonlLine> read_jsonl(const std::string& path);

// Validates one object as a dataset record; `source` ("file:line") prefixes errors.
Record record_from_json(const nlohmann::json& object, const std::string& source, int64_t line);

// Reads a dataset file: read_jsonl + record_from_json. An empty dataset is an error.
std::vector<Record> read_dataset(const std::string& path);

// Writes one compact JSON object per line, atomically (temp file + rename).
void write_jsonl(const std::string& path, const std::vector<nlohmann::json>& lines);

}  // namespace gopd::data
