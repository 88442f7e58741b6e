// Fuzz target: the YAML job config loader with `--set` overrides. Input: "<yaml>\0<override>
// \0<override>…". Beyond the common invariants: a config that loads prints (config_to_yaml)
// as YAML that loads back to the same config.
#include "fuzz_util.h"
#include "gopd/core/config_loader.h"

namespace core = gopd::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = gopd::fuzz::split_input(data, size, 1);
  const std::string yaml = parts[0];
  const std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  const std::string source = "fuzz.yaml";
  core::Config config;
  // An override's error names the override ("--set key=value: …") rather than the file.
  std::vector<std::string> named = {source};
  for (const auto& override_text : overrides) named.push_back("--set " + override_text);
  if (!gopd::fuzz::accepts(named, [&] { config = core::load_config_text(yaml, source, overrides); })) {
    return 0;
  }
  const std::string printed = core::config_to_yaml(config);
  core::Config again;
  if (!gopd::fuzz::accepts("printed.yaml",
                           [&] { again = core::load_config_text(printed, "printed.yaml"); })) {
    gopd::fuzz::fail("the printed config does not load:\n" + printed);
  }
  if (core::config_to_yaml(again) != printed) {
    gopd::fuzz::fail("the printed config loads as a different config:\n" + printed);
  }
  return 0;
}
