// Fuzz target: a model directory's tokenizer files as load_tokenizer reads them. The base is a
// valid sentencepiece tokenizer written by `gopd tokenizer train` (tests/fuzz/tokenizer_dir/);
// byte 0 of the input picks the file the rest of it replaces: tokenizer_config.json (added
// tokens, chat format, special tokens), generation_config.json (eos ids), or tokenizer.model
// (the sentencepiece protobuf). An accepted directory's special ids are in the vocabulary and
// the tokenizer encodes and decodes.
#include <filesystem>
#include <iterator>

#include "fuzz_util.h"
#include "gopd/tokenizer/tokenizer.h"

#ifndef GOPD_SOURCE_DIR
#error "GOPD_SOURCE_DIR must name the repository root"
#endif

namespace tok = gopd::tokenizer;

namespace {

struct Base {
  std::string model;
  std::string config;
};

const Base& base() {
  static const Base files = [] {
    const std::string directory = std::string(GOPD_SOURCE_DIR) + "/tests/fuzz/tokenizer_dir/";
    std::ifstream model(directory + "tokenizer.model", std::ios::binary);
    std::ifstream config(directory + "tokenizer_config.json", std::ios::binary);
    Base loaded{std::string(std::istreambuf_iterator<char>(model), {}),
                std::string(std::istreambuf_iterator<char>(config), {})};
    if (loaded.model.empty() || loaded.config.empty()) gopd::fuzz::fail("missing " + directory);
    return loaded;
  }();
  return files;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string directory = gopd::fuzz::scratch_directory() + "/tokenizer";
  std::filesystem::create_directories(directory);
  const std::string_view fuzzed(reinterpret_cast<const char*>(data + 1), size - 1);
  const int mode = data[0] % 3;
  gopd::fuzz::write_file(directory + "/tokenizer.model", mode == 2 ? fuzzed : std::string_view(base().model));
  gopd::fuzz::write_file(directory + "/tokenizer_config.json", mode == 0 ? fuzzed : std::string_view(base().config));
  if (mode == 1) {
    gopd::fuzz::write_file(directory + "/generation_config.json", fuzzed);
  } else {
    std::filesystem::remove(directory + "/generation_config.json");
  }
  tok::LoadedTokenizer loaded;
  if (!gopd::fuzz::accepts(directory, [&] { loaded = tok::load_tokenizer(directory); })) return 0;
  const tok::Tokenizer& tokenizer = *loaded.tokenizer;
  std::vector<int64_t> special = {loaded.info.bos_id, loaded.info.eos_id, loaded.info.pad_id};
  special.insert(special.end(), loaded.info.stop_ids.begin(), loaded.info.stop_ids.end());
  for (const int64_t id : special) {
    if (id < -1 || id >= tokenizer.vocab_size()) gopd::fuzz::fail("special id out of range: " + std::to_string(id));
  }
  const auto ids = tokenizer.encode("What is 2 + 3?", true);
  for (const int64_t id : ids) {
    if (id < 0 || id >= tokenizer.vocab_size()) gopd::fuzz::fail("id out of range: " + std::to_string(id));
  }
  (void)tokenizer.decode(ids, true);
  return 0;
}
