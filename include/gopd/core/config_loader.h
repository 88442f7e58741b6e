// Loading, overriding and showing job configs. A config file is YAML; `--set key.path=value`
// overrides are applied to the YAML tree before it is read, so they are typed and validated
// by the same code. Every error is an Error with exit code 2 whose message starts with the
// location: `file:line:column: key.path: ...`, or `--set key.path=value: key.path: ...`.
#pragma once

#include <string>
#include <vector>

#include "gopd/core/config.h"

namespace gopd::core {

// Reads `path`, applies `overrides` (each "key.path=value", value parsed as YAML), fills
// defaults, resolves dependent defaults and validates.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from YAML text; `source_name` stands for the file in error messages.
Config load_config_text(const std::string& yaml_text, const std::string& source_name,
                        const std::vector<std::string>& overrides = {});

// The resolved config as YAML, every field present, in schema order; load_config on this
// text yields the same Config.
std::string config_to_yaml(Config config);

// Key paths the schema knows ("optim.lr", ...), in schema order; `teachers.<name>.*` is
// listed as "teachers.*.<key>".
std::vector<std::string> config_key_paths();

}  // namespace gopd::core
