// Fuzz target: the JSONL dataset reader (one JSON object per line, invalid UTF-8, wrong field
// types, empty files), through the file path the CLI uses.
#include "fuzz_util.h"
#include "gopd/data/jsonl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gopd::fuzz::scratch_directory() + "/data.jsonl";
  gopd::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  std::vector<gopd::data::Record> records;
  if (!gopd::fuzz::accepts(path, [&] { records = gopd::data::read_dataset(path); })) return 0;
  for (const auto& record : records) {
    (void)record.prompt_text();
    (void)gopd::data::to_json(record).dump();
  }
  return 0;
}
