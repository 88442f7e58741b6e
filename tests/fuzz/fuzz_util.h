// Shared helpers of the libFuzzer targets (tests/fuzz/*_fuzz.cpp). Each target defines
// LLVMFuzzerTestOneInput; built with clang -fsanitize=fuzzer,address,undefined by `make fuzz`
// (tests/fuzz/CMakeLists.txt), and with the plain compiler and replay_main.cpp for the corpus
// replay that `make test` runs.
//
// The invariant every target checks beyond "no crash, no sanitizer report": a parser either
// accepts its input or throws core::Error with exit code 2 and a message that names the file
// (or request) it was given. Any other exception escaping a parser is a bug and aborts.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gopd/core/error.h"

namespace gopd::fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Runs `parse`; returns true if it accepted the input. core::Error must carry exit code 2 and
// mention one of `sources`; any other exception aborts.
template <typename Parse>
bool accepts(const std::vector<std::string>& sources, Parse&& parse) {
  try {
    parse();
    return true;
  } catch (const core::Error& error) {
    const std::string message = error.what();
    if (std::getenv("GOPD_FUZZ_VERBOSE") != nullptr) std::fprintf(stderr, "refused: %s\n", message.c_str());
    if (error.code() != core::ExitCode::kBadInput) {
      fail("exit code " + std::to_string(error.exit_code()) + " for bad input: " + message);
    }
    bool named = false;
    for (const std::string& source : sources) named = named || message.find(source) != std::string::npos;
    if (!named) fail("error message does not name \"" + sources.front() + "\": " + message);
    return false;
  } catch (const std::exception& error) {
    fail(std::string("an exception other than core::Error escaped: ") + error.what());
  } catch (...) {
    fail("a non-std exception escaped");
  }
}

template <typename Parse>
bool accepts(const std::string& source, Parse&& parse) {
  return accepts(std::vector<std::string>{source}, std::forward<Parse>(parse));
}

// The input cut at NUL bytes; always at least `min_parts` parts (missing ones are empty).
inline std::vector<std::string> split_input(const uint8_t* data, size_t size, size_t min_parts) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      parts.emplace_back();
    } else {
      parts.back().push_back(static_cast<char>(data[i]));
    }
  }
  while (parts.size() < min_parts) parts.emplace_back();
  return parts;
}

// A per-process scratch directory (under $TMPDIR, /dev/shm when it exists: fuzzers write a
// file per input), removed at exit.
inline const std::string& scratch_directory() {
  static const std::string directory = [] {
    namespace fs = std::filesystem;
    fs::path base = fs::temp_directory_path();
    if (std::getenv("TMPDIR") == nullptr && fs::is_directory("/dev/shm")) base = "/dev/shm";
    const fs::path path = base / ("gopd-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(path);
    static const std::string removed_at_exit = path.string();
    std::atexit([] {
      std::error_code ignored;
      fs::remove_all(removed_at_exit, ignored);
    });
    return path.string();
  }();
  return directory;
}

inline void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream output(path, std::ios::binary | std::ios::trunc);
  output.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!output) fail("cannot write scratch file " + path);
}

}  // namespace gopd::fuzz
