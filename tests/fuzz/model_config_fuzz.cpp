// Fuzz target: a model directory's config.json (transformers' LlamaConfig / Qwen2Config /
// Qwen3Config fields). A config that is accepted is written back (model_config_to_json) and
// must read back the same.
#include "fuzz_util.h"
#include "gopd/model/model_config.h"

namespace model = gopd::model;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string directory = gopd::fuzz::scratch_directory();
  const std::string path = directory + "/config.json";
  gopd::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  model::ModelConfig config;
  if (!gopd::fuzz::accepts(path, [&] { config = model::read_model_config(directory); })) return 0;
  const std::string written = model::model_config_to_json(config).dump(2);
  gopd::fuzz::write_file(path, written);
  model::ModelConfig again;
  if (!gopd::fuzz::accepts(path, [&] { again = model::read_model_config(directory); })) {
    gopd::fuzz::fail("the written config.json does not read back:\n" + written);
  }
  if (model::model_config_to_json(again).dump(2) != written) {
    gopd::fuzz::fail("the written config.json reads back differently:\n" + written);
  }
  (void)model::generation_config_json(config).dump();
  return 0;
}
