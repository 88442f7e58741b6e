// Bad input, end to end: every subcommand given a malformed input (missing file, empty file,
// wrong types, a bad line in the middle of a dataset, truncated and corrupt checkpoints, NaN in
// weights, a tokenizer of another model, an unknown chat format) exits with code 2, with one
// message naming the file, line or key at fault, never "internal failure" or an abort, and
// leaves no output file or run directory behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <filesystem>
#include <fstream>

#include "cli_test_util.h"

namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::temp_directory_path() / ("gopd_bad_input_" + std::to_string(getpid()));

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) {
    text.replace(at, from.size(), to);
  }
  return text;
}

std::string dir_path(const std::string& text) { return replace_all(text, "{d}", kDir.string()); }

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

void copy_tree(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

// Overwrites the first value of the first F32 tensor of a safetensors file with NaN.
void poison_first_f32(const fs::path& path) {
  std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
  uint64_t header_size = 0;
  file.read(reinterpret_cast<char*>(&header_size), 8);
  std::string header(header_size, '\0');
  file.read(header.data(), static_cast<std::streamsize>(header_size));
  const auto json = nlohmann::json::parse(header);
  for (const auto& [name, info] : json.items()) {
    if (name == "__metadata__" || info["dtype"] != "F32") continue;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    file.seekp(static_cast<std::streamoff>(8 + header_size + info["data_offsets"][0].get<uint64_t>()));
    file.write(reinterpret_cast<const char*>(&nan), sizeof nan);
    return;
  }
  FAIL() << path << " has no F32 tensor";
}

void truncate_half(const fs::path& path) { fs::resize_file(path, fs::file_size(path) / 2); }

// An sft job on the fixture: `extra` is appended as more YAML.
std::string sft_job(const std::string& name, const std::string& student, const std::string& extra = "") {
  return "algorithm: sft\n"
         "run: {name: " + name + ", output_dir: {d}/runs, threads: 1}\n"
         "student: {path: " + student + "}\n"
         "data: {train_file: {d}/train.jsonl}\n"
         "rollout: {batch_prompts: 4}\n"
         "optim: {lr: 1.0e-2, micro_batch_size: 4}\n"
         "train: {max_steps: 1, save_every: 1}\n" + extra;
}

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(gopd::test::fresh_arith_data(kDir, "train.jsonl", "--split train"), 0);
    ASSERT_EQ(gopd::test::tokenizer_and_models(kDir, "train.jsonl", {"m"}), 0);
    const std::string d = kDir.string();
    // A second tokenizer with a smaller vocabulary and a model on it: "another model".
    ASSERT_EQ(gopd::test::run_cli("tokenizer train --input '" + d + "/train.jsonl' --vocab-size 350 "
                                  "--chat-format chatml --out '" + d + "/tok350'", kDir),
              0);
    ASSERT_EQ(gopd::test::run_cli(gopd::test::tiny_model_args(d + "/tok350", d + "/m350", 3), kDir), 0);

    const fs::path m = kDir / "m";
    copy_tree(m, kDir / "m_truncated");
    truncate_half(kDir / "m_truncated/model.safetensors");
    copy_tree(m, kDir / "m_nan");
    poison_first_f32(kDir / "m_nan/model.safetensors");
    copy_tree(m, kDir / "m_config_type");
    {
      auto config = nlohmann::json::parse(gopd::test::read_file(m / "config.json"));
      config["num_hidden_layers"] = "two";
      write_text(kDir / "m_config_type/config.json", config.dump(2));
    }
    copy_tree(m, kDir / "m_no_config");
    fs::remove(kDir / "m_no_config/config.json");
    copy_tree(m, kDir / "m_chat");
    {
      auto config = nlohmann::json::parse(gopd::test::read_file(m / "tokenizer_config.json"));
      config["gopd_chat_format"] = "vicuna";
      write_text(kDir / "m_chat/tokenizer_config.json", config.dump(2));
    }
    copy_tree(m, kDir / "m_empty_tokenizer");
    write_text(kDir / "m_empty_tokenizer/tokenizer.json", "");
    copy_tree(m, kDir / "m_truncated_tokenizer");
    truncate_half(kDir / "m_truncated_tokenizer/tokenizer.model");
    copy_tree(m, kDir / "m_broken_tokenizer_json");
    write_text(kDir / "m_broken_tokenizer_json/tokenizer.json",
               R"({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}})");
    // The 350-token model with the 400-token tokenizer's files.
    copy_tree(kDir / "m350", kDir / "m_other_tokenizer");
    for (const char* file : {"tokenizer.model", "tokenizer_config.json"}) {
      fs::copy_file(kDir / "tok" / file, kDir / "m_other_tokenizer" / file, fs::copy_options::overwrite_existing);
    }

    write_text(kDir / "empty.jsonl", "");
    write_text(kDir / "a_file", "not a directory\n");
    write_text(kDir / "bad_middle.jsonl",
               "{\"prompt\": \"1+1=\", \"answer\": \"2\", \"response\": \"2\"}\n"
               "{\"prompt\": \"2+2=\", \"answer\": \"4\", \"response\": \"4\"}\n"
               "{\"prompt\": \"3+3=\", \"answer\": 6, \"response\": \n"
               "{\"prompt\": \"4+4=\", \"answer\": \"8\", \"response\": \"8\"}\n");
    write_text(kDir / "wrong_type.jsonl",
               "{\"prompt\": \"1+1=\", \"answer\": \"2\", \"response\": \"2\"}\n"
               "{\"prompt\": [\"not\", \"messages\"], \"answer\": \"4\", \"response\": \"4\"}\n");
    write_text(kDir / "empty.yaml", "");
    write_text(kDir / "wrong_type.yaml", dir_path(replace_all(sft_job("wrong_type", "{d}/m"), "lr: 1.0e-2", "lr: fast")));
    write_text(kDir / "logprobs_wrong_type.jsonl", "{\"text\": \"1+1=2\"}\n{\"tokens\": \"1 2 3\"}\n");
    write_text(kDir / "unknown_key.yaml", dir_path(sft_job("unknown_key", "{d}/m", "optimiser: {lr: 1}\n")));
    write_text(kDir / "truncated_model.yaml", dir_path(sft_job("truncated_model", "{d}/m_truncated")));
    write_text(kDir / "nan_model.yaml", dir_path(sft_job("nan_model", "{d}/m_nan")));
    write_text(kDir / "bad_data.yaml",
               dir_path(replace_all(sft_job("bad_data", "{d}/m"), "{d}/train.jsonl", "{d}/bad_middle.jsonl")));
    write_text(kDir / "other_teacher.yaml",
               dir_path("algorithm: opd\n"
                        "run: {name: other_teacher, output_dir: {d}/runs, threads: 1}\n"
                        "student: {path: {d}/m}\n"
                        "teachers: {t: {d}/m350}\n"
                        "data: {train_file: {d}/train.jsonl}\n"
                        "rollout: {batch_prompts: 4, max_new_tokens: 4}\n"
                        "optim: {micro_batch_size: 4}\n"
                        "train: {max_steps: 1}\n"));
    // A finished run with a checkpoint, and copies of it with a damaged checkpoint.
    write_text(kDir / "ok.yaml", dir_path(sft_job("ok", "{d}/m")));
    std::string err;
    ASSERT_EQ(gopd::test::run_cli("--threads 1 train '" + d + "/ok.yaml'", kDir, &err), 0) << err;
    for (const char* name : {"ckpt_truncated", "ckpt_optimizer", "ckpt_state", "ckpt_nan"}) {
      copy_tree(kDir / "runs/ok", kDir / "runs" / name);
      // Two steps, so that the resumed run has work to do.
      write_text(kDir / (std::string(name) + ".yaml"),
                 replace_all(dir_path(sft_job(name, "{d}/m")), "max_steps: 1", "max_steps: 2"));
    }
    truncate_half(kDir / "runs/ckpt_truncated/checkpoints/step_1/model.safetensors");
    write_text(kDir / "runs/ckpt_optimizer/checkpoints/step_1/optimizer.pt", "not a torch archive");
    write_text(kDir / "runs/ckpt_state/checkpoints/step_1/trainer_state.json", "{\"step\": \"one\"}");
    poison_first_f32(kDir / "runs/ckpt_nan/checkpoints/step_1/model.safetensors");
  }
  static void TearDownTestSuite() { fs::remove_all(kDir); }
};

struct Case {
  std::string name;
  std::string args;                   // {d} = the fixture directory
  std::vector<std::string> message;   // what the one error line must name
  std::vector<std::string> absent;    // outputs that must not exist afterwards
};

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
      // config
      {"config check: missing file", "config check {d}/nope.yaml", {"{d}/nope.yaml"}, {}},
      {"config check: empty file", "config check {d}/empty.yaml", {"{d}/empty.yaml"}, {}},
      {"config check: wrong type", "config check {d}/wrong_type.yaml", {"wrong_type.yaml", "optim.lr"}, {}},
      {"config check: unknown key", "config check {d}/unknown_key.yaml", {"unknown_key.yaml", "optimiser"}, {}},
      {"config check: bad --set", "config check {d}/ok.yaml --set train.max_steps=many",
       {"train.max_steps"}, {}},
      // data
      {"data: unknown task", "data --task riddles --n 4 --out {d}/out/data.jsonl", {"--task", "riddles"},
       {"{d}/out"}},
      {"data: output under a file", "data --task arith --n 4 --out {d}/a_file/data.jsonl",
       {"{d}/a_file/data.jsonl", "Not a directory"}, {}},
      // reward
      {"reward: missing input", "reward --type math --input {d}/nope.jsonl --output {d}/out/r.jsonl",
       {"{d}/nope.jsonl"}, {"{d}/out"}},
      {"reward: empty input", "reward --type math --input {d}/empty.jsonl --output {d}/out/r.jsonl",
       {"{d}/empty.jsonl"}, {"{d}/out"}},
      {"reward: bad line in the middle",
       "reward --type math --input {d}/bad_middle.jsonl --output {d}/out/r.jsonl", {"{d}/bad_middle.jsonl:3"},
       {"{d}/out"}},
      // tokenizer and tokenize
      {"tokenizer train: missing input",
       "tokenizer train --input {d}/nope.txt --vocab-size 300 --out {d}/out/tok", {"{d}/nope.txt"}, {"{d}/out"}},
      {"tokenizer train: unknown chat format",
       "tokenizer train --input {d}/train.jsonl --vocab-size 300 --chat-format vicuna --out {d}/out/tok",
       {"--chat-format", "vicuna"}, {"{d}/out"}},
      {"tokenize: missing tokenizer", "tokenize --tokenizer {d}/nope --text hi", {"{d}/nope"}, {}},
      {"tokenize: empty tokenizer.json", "tokenize --tokenizer {d}/m_empty_tokenizer --text hi",
       {"m_empty_tokenizer/tokenizer.json"}, {}},
      {"tokenize: truncated tokenizer.model", "tokenize --tokenizer {d}/m_truncated_tokenizer --text hi",
       {"m_truncated_tokenizer/tokenizer.model"}, {}},
      {"tokenize: malformed merge in tokenizer.json", "tokenize --tokenizer {d}/m_broken_tokenizer_json --text hi",
       {"m_broken_tokenizer_json/tokenizer.json", "merges"}, {}},
      {"tokenize: unknown chat format", "tokenize --tokenizer {d}/m_chat --text hi",
       {"m_chat/tokenizer_config.json", "gopd_chat_format", "vicuna"}, {}},
      // init-model
      {"init-model: missing tokenizer", gopd::test::tiny_model_args("{d}/nope", "{d}/out/model", 1),
       {"{d}/nope"}, {"{d}/out"}},
      {"init-model: output under a file", gopd::test::tiny_model_args("{d}/tok", "{d}/a_file/model", 1),
       {"{d}/a_file/model", "Not a directory"}, {}},
      {"tokenizer train: output under a file",
       "tokenizer train --input {d}/train.jsonl --vocab-size 400 --out {d}/a_file/tok",
       {"{d}/a_file/tok", "Not a directory"}, {}},
      // generate, logprobs, eval
      {"generate: missing model", "generate --model {d}/nope --prompt hi", {"{d}/nope"}, {}},
      {"generate: no config.json", "generate --model {d}/m_no_config --prompt hi",
       {"m_no_config/config.json"}, {}},
      {"generate: config.json wrong type", "generate --model {d}/m_config_type --prompt hi",
       {"m_config_type/config.json", "num_hidden_layers"}, {}},
      {"generate: truncated weights", "generate --model {d}/m_truncated --prompt hi",
       {"m_truncated/model.safetensors"}, {}},
      {"generate: NaN in weights", "generate --model {d}/m_nan --prompt hi",
       {"m_nan/model.safetensors", "non-finite"}, {}},
      {"generate: tokenizer of another model", "generate --model {d}/m_other_tokenizer --prompt hi",
       {"m_other_tokenizer"}, {}},
      {"generate: unknown chat format", "generate --model {d}/m_chat --prompt hi",
       {"m_chat/tokenizer_config.json", "vicuna"}, {}},
      {"generate: bad line in the middle",
       "generate --model {d}/m --input {d}/bad_middle.jsonl --output {d}/out/g.jsonl",
       {"{d}/bad_middle.jsonl:3"}, {"{d}/out"}},
      {"logprobs: bad line in the middle",
       "logprobs --model {d}/m --input {d}/bad_middle.jsonl --output {d}/out/l.jsonl",
       {"{d}/bad_middle.jsonl:3"}, {"{d}/out"}},
      {"logprobs: wrong type",
       "logprobs --model {d}/m --input {d}/logprobs_wrong_type.jsonl --output {d}/out/l.jsonl",
       {"{d}/logprobs_wrong_type.jsonl:2", "tokens"}, {"{d}/out"}},
      {"logprobs: empty input", "logprobs --model {d}/m --input {d}/empty.jsonl --output {d}/out/l.jsonl",
       {"{d}/empty.jsonl"}, {"{d}/out"}},
      {"generate: wrong type", "generate --model {d}/m --input {d}/wrong_type.jsonl --output {d}/out/g.jsonl",
       {"{d}/wrong_type.jsonl:2", "prompt"}, {"{d}/out"}},
      {"eval: empty data", "eval --model {d}/m --data {d}/empty.jsonl --out {d}/out/e.json",
       {"{d}/empty.jsonl"}, {"{d}/out"}},
      {"eval: truncated weights", "eval --model {d}/m_truncated --data {d}/train.jsonl --out {d}/out/e.json",
       {"m_truncated/model.safetensors"}, {"{d}/out"}},
      // train
      {"train: missing config", "train {d}/nope.yaml", {"{d}/nope.yaml"}, {}},
      {"train: wrong type", "train {d}/wrong_type.yaml", {"{d}/wrong_type.yaml", "optim.lr"},
       {"{d}/runs/wrong_type"}},
      {"train: run directory under a file", "train {d}/ok.yaml --set run.output_dir={d}/a_file/runs",
       {"{d}/a_file/runs/ok", "Not a directory"}, {}},
      {"eval: output under a file", "eval --model {d}/m --data {d}/train.jsonl --out {d}/a_file/eval",
       {"{d}/a_file/eval", "not a directory"}, {}},
      {"train: truncated student", "train {d}/truncated_model.yaml", {"m_truncated/model.safetensors"},
       {"{d}/runs/truncated_model"}},
      {"train: NaN student", "train {d}/nan_model.yaml", {"m_nan/model.safetensors", "non-finite"},
       {"{d}/runs/nan_model"}},
      {"train: bad line in the dataset", "train {d}/bad_data.yaml", {"{d}/bad_middle.jsonl:3"},
       {"{d}/runs/bad_data"}},
      {"train: teacher with another tokenizer", "train {d}/other_teacher.yaml", {"m350"},
       {"{d}/runs/other_teacher"}},
      {"train --resume: truncated checkpoint", "train {d}/ckpt_truncated.yaml --resume auto",
       {"ckpt_truncated/checkpoints/step_1/model.safetensors"}, {"{d}/runs/ckpt_truncated/checkpoints/step_2"}},
      {"train --resume: corrupt optimizer state", "train {d}/ckpt_optimizer.yaml --resume auto",
       {"ckpt_optimizer/checkpoints/step_1/optimizer.pt"}, {"{d}/runs/ckpt_optimizer/checkpoints/step_2"}},
      {"train --resume: wrong type in trainer state", "train {d}/ckpt_state.yaml --resume auto",
       {"ckpt_state/checkpoints/step_1/trainer_state.json", "\"step\": expected an integer"},
       {"{d}/runs/ckpt_state/checkpoints/step_2"}},
      {"train --resume: NaN in checkpoint", "train {d}/ckpt_nan.yaml --resume auto",
       {"ckpt_nan/checkpoints/step_1/model.safetensors", "non-finite"},
       {"{d}/runs/ckpt_nan/checkpoints/step_2"}},
      {"train --resume: not a run directory", "train {d}/ok.yaml --resume {d}/m", {"{d}/m"}, {}},
      // serve, bench, launch
      {"serve: truncated weights", "serve --model {d}/m_truncated --port 0", {"m_truncated/model.safetensors"}, {}},
      {"launch: no ranks", "launch --nproc 0 -- train {d}/ok.yaml", {"--nproc"}, {}},
      {"bench: unknown dtype", "bench kernels --dtype float7", {"--dtype", "float7"}, {}},
  };
  return table;
}

TEST_F(BadInput, EverySubcommandRefusesWithExitTwoNamingTheCulprit) {
  for (const Case& test_case : cases()) {
    SCOPED_TRACE(test_case.name);
    fs::remove_all(kDir / "out");
    std::string err;
    const int code = gopd::test::run_cli("--threads 1 " + dir_path(test_case.args), kDir, &err);
    EXPECT_EQ(code, 2) << err;
    for (const std::string& part : test_case.message) {
      EXPECT_NE(err.find(dir_path(part)), std::string::npos) << "expected \"" << dir_path(part) << "\" in:\n"
                                                             << err;
    }
    for (const char* forbidden : {"internal failure", "terminate called", "c10::Error", "Exception raised from",
                                  "filesystem error", "what():"}) {
      EXPECT_EQ(err.find(forbidden), std::string::npos) << "\"" << forbidden << "\" in:\n" << err;
    }
    for (const std::string& path : test_case.absent) {
      EXPECT_FALSE(fs::exists(dir_path(path))) << dir_path(path) << " was left behind";
    }
  }
}

}  // namespace
