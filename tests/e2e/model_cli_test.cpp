// The model commands end to end: train a tokenizer on a built-in dataset, build a model
// directory with init-model (exactly the Hugging Face layout), score text with logprobs,
// sample with generate, and evaluate with eval (summary written, numbers consistent).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

int run(const std::string& args) {
  const std::string command = std::string("cd '") + GOPD_SOURCE_DIR + "' && '" + GOPD_BINARY +
                              "' " + args + " > /dev/null 2> /tmp/gopd_model_cli_stderr";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream input(path);
  for (std::string line; std::getline(input, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(ModelCli, TokenizerInitModelLogprobsGenerateEval) {
  const fs::path dir = fs::temp_directory_path() / "gopd_model_cli";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string d = dir.string();
  ASSERT_EQ(
      run("data --task arith --n 150 --difficulty 1 --split train --out '" + d + "/train.jsonl'"),
      0);
  ASSERT_EQ(run("data --task arith --n 6 --difficulty 1 --split eval --out '" + d + "/eval.jsonl'"),
            0);
  ASSERT_EQ(run("tokenizer train --input '" + d +
                "/train.jsonl' --vocab-size 400 --chat-format chatml --out '" + d + "/tok'"),
            0);
  ASSERT_EQ(
      run("init-model --arch qwen3 --hidden 32 --layers 2 --heads 4 --kv-heads 2 --tokenizer '" +
          d + "/tok' --out '" + d + "/model' --seed 3"),
      0);
  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir / "model"))
    files.insert(entry.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"config.json", "generation_config.json",
                                          "model.safetensors", "tokenizer.model",
                                          "tokenizer_config.json", "special_tokens_map.json"}));
  std::ifstream config_file(dir / "model" / "config.json");
  const nlohmann::json config = nlohmann::json::parse(config_file);
  EXPECT_EQ(config["architectures"][0], "Qwen3ForCausalLM");
  EXPECT_EQ(config["model_type"], "qwen3");
  EXPECT_EQ(config["vocab_size"], 400);
  EXPECT_EQ(config["num_key_value_heads"], 2);

  {
    std::ofstream input(dir / "text.jsonl");
    input << "{\"text\": \"Begin with 3. Add 4.\"}\n{\"tokens\": [5, 6, 7]}\n";
  }
  ASSERT_EQ(run("logprobs --model '" + d + "/model' --input '" + d + "/text.jsonl' --output '" + d +
                "/lp.jsonl'"),
            0);
  const auto scored = read_jsonl(dir / "lp.jsonl");
  ASSERT_EQ(scored.size(), 2u);
  EXPECT_TRUE(scored[1]["logprobs"][0].is_null());
  for (size_t t = 1; t < scored[0]["logprobs"].size(); ++t) {
    const double value = scored[0]["logprobs"][t].get<double>();
    EXPECT_LT(value, 0.0);
    EXPECT_GT(value, -20.0);
  }

  ASSERT_EQ(
      run("generate --model '" + d + "/model' --input '" + d +
          "/eval.jsonl' --n 2 --seed 4 --chat --max-new-tokens 8 --output '" + d + "/gen.jsonl'"),
      0);
  const auto generated = read_jsonl(dir / "gen.jsonl");
  ASSERT_EQ(generated.size(), 12u);
  for (const auto& line : generated) {
    EXPECT_LE(line["tokens"].size(), 8u);
    EXPECT_EQ(line["tokens"].size(), line["logprobs"].size());
    EXPECT_TRUE(line.contains("answer"));  // record fields are kept, so `gopd reward` can score it
  }
  ASSERT_EQ(
      run("generate --model '" + d + "/model' --input '" + d +
          "/eval.jsonl' --n 2 --seed 4 --chat --max-new-tokens 8 --batch-prompts 1 --output '" + d +
          "/gen2.jsonl'"),
      0);
  // Batching does not change the samples; log-probs agree to float rounding (other rows in
  // the batch change the summation order).
  const auto rebatched = read_jsonl(dir / "gen2.jsonl");
  ASSERT_EQ(rebatched.size(), generated.size());
  for (size_t i = 0; i < generated.size(); ++i) {
    EXPECT_EQ(rebatched[i]["tokens"], generated[i]["tokens"]);
    EXPECT_EQ(rebatched[i]["response"], generated[i]["response"]);
    for (size_t t = 0; t < generated[i]["logprobs"].size(); ++t) {
      EXPECT_NEAR(rebatched[i]["logprobs"][t].get<double>(),
                  generated[i]["logprobs"][t].get<double>(), 1e-5);
    }
  }

  ASSERT_EQ(run("eval --model '" + d + "/model' --data '" + d +
                "/eval.jsonl' --samples 3 --temperature 1 --max-new-tokens 8 --chat --out '" + d +
                "/eval_out'"),
            0);
  std::ifstream summary_file(dir / "eval_out" / "summary.json");
  const nlohmann::json summary = nlohmann::json::parse(summary_file);
  EXPECT_EQ(summary["prompts"], 6);
  EXPECT_EQ(summary["samples_per_prompt"], 3);
  for (const char* key :
       {"avg@3", "pass@1", "pass@2", "pass@3", "mean_response_length", "truncation_rate"}) {
    EXPECT_TRUE(summary.contains(key)) << key;
  }
  const auto samples = read_jsonl(dir / "eval_out" / "samples.jsonl");
  ASSERT_EQ(samples.size(), 18u);
  double reward_sum = 0, length_sum = 0;
  for (const auto& sample : samples) {
    reward_sum += sample["reward"].get<double>();
    length_sum += sample["length"].get<double>();
  }
  EXPECT_NEAR(summary["avg@3"].get<double>(), reward_sum / 18.0, 1e-12);
  EXPECT_NEAR(summary["mean_response_length"].get<double>(), length_sum / 18.0, 1e-12);
  fs::remove_all(dir);
}

}  // namespace
