// Helpers shared by the end-to-end tests that run the gopd binary (GOPD_BINARY) from the
// source directory (GOPD_SOURCE_DIR, so relative paths in shipped configs resolve).
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gopd::test {

// Runs `gopd ARGS` with stdout discarded and stderr captured in `scratch`/stderr.txt (returned
// through `stderr_text` when given); returns the exit code, −1 if killed by a signal.
inline int run_cli(const std::string& args, const std::filesystem::path& scratch,
                   std::string* stderr_text = nullptr) {
  const std::string err = (scratch / "stderr.txt").string();
  const std::string command = std::string("cd '") + GOPD_SOURCE_DIR + "' && '" + GOPD_BINARY + "' " + args +
                              " > /dev/null 2> '" + err + "'";
  const int status = std::system(command.c_str());
  if (stderr_text != nullptr) {
    std::ifstream input(err);
    std::stringstream text;
    text << input.rdbuf();
    *stderr_text = text.str();
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream input(path);
  for (std::string line; std::getline(input, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

}  // namespace gopd::test
