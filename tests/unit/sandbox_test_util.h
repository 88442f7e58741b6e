// Shared by the sandbox tests: how many host processes are still around from a run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace gopd::reward::test {

// Host processes whose command line contains `marker` (the sandboxed programs carry it in
// their `python3 -c` argument, and forked children inherit it).
inline int64_t processes_with(const std::string& marker) {
  int64_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream input(entry.path() / "cmdline", std::ios::binary);
    std::stringstream text;
    text << input.rdbuf();
    if (text.str().find(marker) != std::string::npos) ++count;
  }
  return count;
}

}  // namespace gopd::reward::test
