// Helpers shared by the end-to-end tests that run the gopd binary (GOPD_BINARY) from the
// source directory (GOPD_SOURCE_DIR, so relative paths in shipped configs resolve).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <thread>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gopd::test {

// A file's bytes ("" if it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream input(path, std::ios::binary);
  std::stringstream text;
  text << input.rdbuf();
  return text.str();
}

// Runs `gopd ARGS` with stdout discarded and stderr captured in `scratch`/stderr.txt (returned
// through `stderr_text` when given); returns the exit code, −1 if killed by a signal.
// `launcher`, when given, is the command that runs the binary (an emulator, say).
inline int run_cli(const std::string& args, const std::filesystem::path& scratch,
                   std::string* stderr_text = nullptr, const std::string& launcher = "") {
  const std::string err = (scratch / "stderr.txt").string();
  const std::string command = std::string("cd '") + GOPD_SOURCE_DIR + "' && " + launcher + " '" +
                              GOPD_BINARY + "' " + args + " > /dev/null 2> '" + err + "'";
  const int status = std::system(command.c_str());
  if (stderr_text != nullptr) {
    std::ifstream input(err);
    std::stringstream text;
    text << input.rdbuf();
    *stderr_text = text.str();
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// `gopd ARGS` started in the background in a process group of its own, with `environment`
// ("NAME=value …") set, its stdout/stderr to `log`.
inline pid_t start(const std::string& environment, const std::string& args, const std::filesystem::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const std::string command = std::string("cd '") + GOPD_SOURCE_DIR + "' && exec env " + environment + " '" +
                                GOPD_BINARY + "' " + args + " > '" + log.string() + "' 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Waits up to `seconds` for `pid`; its exit code, −1 for a signal, −2 if it is still running.
inline int wait_for(pid_t pid, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -2;
}

// `gopd init-model` arguments of the e2e tests' tiny qwen3 model (hidden 32, 2 layers, 4 heads,
// 2 KV heads, MLP 64) on `tokenizer`, written to `out`, weights from `seed`.
inline std::string tiny_model_args(const std::string& tokenizer, const std::string& out, int seed) {
  return "init-model --arch qwen3 --hidden 32 --layers 2 --heads 4 --kv-heads 2 --intermediate 64 --tokenizer '" +
         tokenizer + "' --out '" + out + "' --seed " + std::to_string(seed);
}

// A fresh `dir` holding the arithmetic data the training suites share: `train_name` (64 records
// of difficulty 2, with `train_options` such as "--noise 0.2") and eval.jsonl (4 held-out
// records). Returns 0, or the exit code of the first command that failed.
inline int fresh_arith_data(const std::filesystem::path& dir, const std::string& train_name,
                            const std::string& train_options) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string d = dir.string();
  const int code = run_cli("data --task arith --n 64 --difficulty 2 " + train_options + " --out '" + d + "/" +
                               train_name + "'",
                           dir);
  return code != 0 ? code
                   : run_cli("data --task arith --n 4 --difficulty 2 --split eval --out '" + d + "/eval.jsonl'", dir);
}

// Copies the JSONL records of `in` to `out` with "teacher" set to names[i % names.size()] on
// record i: a multi-teacher dataset whose records alternate between the teachers.
inline void write_routed_records(const std::filesystem::path& in, const std::filesystem::path& out,
                                 const std::vector<std::string>& names) {
  std::ifstream input(in);
  std::ofstream output(out);
  size_t index = 0;
  for (std::string text; std::getline(input, text); ++index) {
    nlohmann::json record = nlohmann::json::parse(text);
    record["teacher"] = names[index % names.size()];
    output << record.dump() << "\n";
  }
}

// The fixture the training suites share, in `dir`: a 400-token chatml tokenizer `tok` trained on
// `dir`/`text_file`, and a tiny model `dir`/<name> on it for each of `models` (seeds 1, 2, …).
// Returns 0, or the exit code of the first command that failed.
inline int tokenizer_and_models(const std::filesystem::path& dir, const std::string& text_file,
                                const std::vector<std::string>& models) {
  const std::string d = dir.string();
  int code = run_cli("tokenizer train --input '" + d + "/" + text_file +
                         "' --vocab-size 400 --chat-format chatml --out '" + d + "/tok'",
                     dir);
  for (size_t i = 0; i < models.size() && code == 0; ++i) {
    code = run_cli(tiny_model_args(d + "/tok", d + "/" + models[i], int(i) + 1), dir);
  }
  return code;
}

// The float32 tensors of a model.safetensors file, name → values (empty if it cannot be read).
inline std::map<std::string, std::vector<float>> read_f32_safetensors(const std::filesystem::path& path) {
  std::map<std::string, std::vector<float>> tensors;
  const std::string bytes = read_file(path);
  if (bytes.size() < 8) return tensors;
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | uint8_t(bytes[size_t(i)]);
  if (8 + header_size > bytes.size()) return tensors;
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_size), nullptr, false);
  if (!header.is_object()) return tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__" || entry.value("dtype", "") != "F32") continue;
    const size_t begin = entry["data_offsets"][0].get<size_t>();
    const size_t end = entry["data_offsets"][1].get<size_t>();
    std::vector<float> values((end - begin) / sizeof(float));
    std::memcpy(values.data(), bytes.data() + 8 + header_size + begin, end - begin);
    tensors[name] = std::move(values);
  }
  return tensors;
}

// The largest absolute difference between two models' float32 weights (infinity when their
// tensors differ in names or sizes, or a file cannot be read).
inline double max_weight_difference(const std::filesystem::path& a, const std::filesystem::path& b) {
  const auto left = read_f32_safetensors(a);
  const auto right = read_f32_safetensors(b);
  if (left.empty() || left.size() != right.size()) return INFINITY;
  double largest = 0;
  for (const auto& [name, values] : left) {
    const auto other = right.find(name);
    if (other == right.end() || other->second.size() != values.size()) return INFINITY;
    for (size_t i = 0; i < values.size(); ++i)
      largest = std::max(largest, double(std::fabs(values[i] - other->second[i])));
  }
  return largest;
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream input(path);
  for (std::string line; std::getline(input, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

}  // namespace gopd::test
