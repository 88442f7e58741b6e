// Benchmark: gopd's tokenizer.json encode throughput against Hugging Face `tokenizers` (Rust,
// run from the project venv by scripts/tokenizer_bench_reference.py) on the same ~10 MB corpus,
// for Qwen3 (byte-level BPE) and Mistral-7B (sentencepiece-style BPE with byte fallback), the
// files in tests/assets/tokenizers/.
// The corpus is built deterministically from the reference corpus strings
// (tests/assets/tokenizer_reference/qwen3.json): 4 kB documents of strings drawn with a fixed
// seed. Both sides encode every document one at a time on one thread, best of 3 runs; the id
// count and an FNV-1a checksum over all ids are compared so the two are known to do the same
// work. Prints one JSON line per tokenizer:
//   {"bench":"tokenizer_encode","tokenizer":"qwen3","metric":"MB/s","value":X,"baseline":Y,
//    "baseline_name":"tokenizers 0.x (Rust)","ratio":X/Y,"ids_match":true}
// Usage: tokenizer_bench [SOURCE_DIR]  (default: the GOPD_SOURCE_DIR compile definition)
// Needs the venv of scripts/setup.sh (.venv/bin/python with `tokenizers`); without it the
// baseline is null and the bench says why on stderr.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "gopd/core/error.h"
#include "gopd/tokenizer/hf_tokenizer.h"

namespace {

using Json = nlohmann::json;

constexpr int64_t kCorpusBytes = 10'000'000;
constexpr int64_t kDocumentBytes = 4096;
constexpr uint32_t kSeed = 20240531;
constexpr int kRuns = 3;

std::vector<std::string> build_corpus(const std::string& source_dir) {
  std::ifstream file(source_dir + "/tests/assets/tokenizer_reference/qwen3.json");
  if (!file) throw std::runtime_error("cannot open tests/assets/tokenizer_reference/qwen3.json");
  Json reference = Json::parse(file);
  std::vector<std::string> strings;
  for (const Json& test_case : reference["cases"]) {
    std::string text = test_case["text"].get<std::string>();
    if (!text.empty()) strings.push_back(std::move(text));
  }
  // std::mt19937's output is fixed by the standard; `% size` keeps the draw portable too.
  std::mt19937 rng(kSeed);
  std::vector<std::string> documents;
  int64_t total = 0;
  std::string document;
  while (total < kCorpusBytes) {
    document += strings[rng() % strings.size()];
    document += rng() % 4 == 0 ? "\n\n" : " ";
    if (static_cast<int64_t>(document.size()) >= kDocumentBytes) {
      total += static_cast<int64_t>(document.size());
      documents.push_back(std::move(document));
      document.clear();
    }
  }
  return documents;
}

struct Measurement {
  double mb_per_s = 0;
  int64_t tokens = 0;
  uint32_t checksum = 0x811c9dc5;  // FNV-1a over all ids, as the Python side computes it
};

Measurement measure_gopd(const gopd::tokenizer::Tokenizer& tokenizer,
                         const std::vector<std::string>& documents) {
  double megabytes = 0;
  for (const std::string& document : documents) megabytes += document.size() / 1e6;
  Measurement result;
  double best_seconds = 1e30;
  for (int run = 0; run < kRuns; ++run) {
    std::vector<std::vector<int64_t>> all_ids;
    all_ids.reserve(documents.size());
    auto start = std::chrono::steady_clock::now();
    for (const std::string& document : documents) all_ids.push_back(tokenizer.encode(document));
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best_seconds = std::min(best_seconds, seconds);
    if (run == 0) {
      for (const auto& ids : all_ids) {
        result.tokens += static_cast<int64_t>(ids.size());
        for (int64_t id : ids) {
          result.checksum = (result.checksum ^ static_cast<uint32_t>(id)) * 0x01000193u;
        }
      }
    }
  }
  result.mb_per_s = megabytes / best_seconds;
  return result;
}

// Runs the HF tokenizers reference; nullopt (and a note on stderr) when it cannot run.
std::optional<Json> measure_reference(const std::string& source_dir, const std::string& name,
                                      const std::string& tokenizer_path,
                                      const std::string& corpus_path) {
  std::string python = source_dir + "/.venv/bin/python";
  if (!std::filesystem::exists(python)) {
    std::cerr << "tokenizer_bench: " << python << " is missing (run scripts/setup.sh): no baseline\n";
    return std::nullopt;
  }
  std::string command = "'" + python + "' '" + source_dir +
                        "/scripts/tokenizer_bench_reference.py' " + name + " '" + tokenizer_path +
                        "' '" + corpus_path + "'";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string output;
  char buffer[4096];
  while (size_t read = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, read);
  int status = pclose(pipe);
  size_t line_start = output.rfind('{');
  if (status != 0 || line_start == std::string::npos) {
    std::cerr << "tokenizer_bench: the tokenizers reference did not run (" << command << "): " << output
              << "\n";
    return std::nullopt;
  }
  try {
    return Json::parse(output.substr(line_start));
  } catch (const Json::exception&) {
    std::cerr << "tokenizer_bench: unreadable tokenizers reference output: " << output << "\n";
    return std::nullopt;
  }
}

}  // namespace

int main(int argc, char** argv) {
#ifdef GOPD_SOURCE_DIR
  std::string source_dir = argc > 1 ? argv[1] : GOPD_SOURCE_DIR;
#else
  if (argc < 2) {
    std::cerr << "usage: tokenizer_bench SOURCE_DIR\n";
    return 2;
  }
  std::string source_dir = argv[1];
#endif
  try {
    std::vector<std::string> documents = build_corpus(source_dir);
    std::string corpus_path = (std::filesystem::temp_directory_path() /
                               ("gopd_tokenizer_bench_" + std::to_string(getpid()) + ".json"))
                                  .string();
    std::ofstream(corpus_path) << Json(documents).dump();
    int exit_code = 0;
    for (const std::string name : {"qwen3", "mistral"}) {
      std::string path = source_dir + "/tests/assets/tokenizers/" + name + "/tokenizer.json";
      if (!std::filesystem::exists(path)) {
        std::cerr << "tokenizer_bench: " << path << " is missing\n";
        exit_code = 1;
        continue;
      }
      std::unique_ptr<gopd::tokenizer::Tokenizer> tokenizer =
          gopd::tokenizer::load_hf_tokenizer(path);
      Measurement gopd_result = measure_gopd(*tokenizer, documents);
      std::optional<Json> reference = measure_reference(source_dir, name, path, corpus_path);
      Json line = {{"bench", "tokenizer_encode"},
                   {"tokenizer", name},
                   {"metric", "MB/s"},
                   {"value", gopd_result.mb_per_s},
                   {"baseline", nullptr},
                   {"baseline_name", "tokenizers (Rust)"},
                   {"ratio", nullptr},
                   {"tokens", gopd_result.tokens}};
      if (reference) {
        double baseline = (*reference)["mb_per_s"].get<double>();
        line["baseline"] = baseline;
        line["baseline_name"] = (*reference)["reference"];
        line["ratio"] = gopd_result.mb_per_s / baseline;
        line["ids_match"] = (*reference)["tokens"].get<int64_t>() == gopd_result.tokens &&
                            (*reference)["checksum"].get<uint32_t>() == gopd_result.checksum;
        if (!line["ids_match"].get<bool>()) exit_code = 1;
      }
      std::cout << line.dump() << std::endl;
    }
    std::filesystem::remove(corpus_path);
    return exit_code;
  } catch (const gopd::core::Error& error) {
    std::cerr << "tokenizer_bench: " << error.what() << "\n";
    return error.exit_code();
  } catch (const std::exception& error) {
    std::cerr << "tokenizer_bench: " << error.what() << "\n";
    return 1;
  }
}
