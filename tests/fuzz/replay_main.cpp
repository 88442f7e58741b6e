// The corpus replay `make test` runs: every committed input of a fuzz target (its seeds, the
// corpus kept from fuzzing runs and the regression inputs of crashes found) through the
// target's LLVMFuzzerTestOneInput, built with the ordinary compiler and without libFuzzer.
// Each target's source is compiled with LLVMFuzzerTestOneInput renamed to gopd_fuzz_<target>.
//
//   gopd_fuzz_replay <target> <file or directory>...
//
// Exit 0 when every input ran (the invariants abort otherwise), 2 on bad usage (an unknown
// target, a missing or empty corpus).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#define GOPD_FUZZ_TARGETS(X) \
  X(safetensors)             \
  X(checkpoint_index)        \
  X(tokenizer)               \
  X(tokenizer_dir)           \
  X(config)                  \
  X(dataset)                 \
  X(model_config)            \
  X(chat)                    \
  X(math_verifier)           \
  X(serve_request)

#define GOPD_DECLARE(name) extern "C" int gopd_fuzz_##name(const uint8_t* data, size_t size);
GOPD_FUZZ_TARGETS(GOPD_DECLARE)
#undef GOPD_DECLARE

namespace {

using Target = int (*)(const uint8_t*, size_t);

std::vector<std::filesystem::path> inputs_of(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    for (const auto& entry : fs::recursive_directory_iterator(path)) {
      if (entry.is_regular_file() && entry.path().filename().string()[0] != '.') {
        files.push_back(entry.path());
      }
    }
  } else if (fs::is_regular_file(path)) {
    files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, Target> targets = {
#define GOPD_ENTRY(name) {#name, gopd_fuzz_##name},
      GOPD_FUZZ_TARGETS(GOPD_ENTRY)
#undef GOPD_ENTRY
  };
  if (argc < 3 || targets.count(argv[1]) == 0) {
    std::fprintf(stderr, "usage: gopd_fuzz_replay <target> <file or directory>...\ntargets:");
    for (const auto& entry : targets) std::fprintf(stderr, " %s", entry.first.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  const Target target = targets.at(argv[1]);
  size_t replayed = 0;
  for (int i = 2; i < argc; ++i) {
    const auto files = inputs_of(argv[i]);
    if (files.empty()) {
      std::fprintf(stderr, "gopd_fuzz_replay: %s: no inputs (missing or empty)\n", argv[i]);
      return 2;
    }
    for (const auto& file : files) {
      std::ifstream input(file, std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(input)),
                                    std::istreambuf_iterator<char>());
      if (!input.eof() && input.fail()) {
        std::fprintf(stderr, "gopd_fuzz_replay: %s: cannot read\n", file.c_str());
        return 2;
      }
      // An exact-size heap buffer, as libFuzzer passes (a replay under ASan then catches reads
      // past the end).
      std::vector<uint8_t> data(bytes.begin(), bytes.end());
      target(data.data(), data.size());
      ++replayed;
    }
  }
  std::printf("%s: %zu inputs replayed, no invariant violated\n", argv[1], replayed);
  return 0;
}
