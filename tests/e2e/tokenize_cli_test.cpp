// End-to-end tests of `gopd tokenizer train` and `gopd tokenize`: a tokenizer trained from a
// JSONL dataset round-trips text through the CLI, and bad input gives exit code 2 with one
// clear line and no output.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string read_all(const fs::path& path) {
  std::ifstream input(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
}

class TokenizeCli : public ::testing::Test {
 protected:
  // One trained tokenizer for the suite.
  static void SetUpTestSuite() {
    directory_ = new fs::path(fs::temp_directory_path() /
                              ("gopd_tokenize_cli_" + std::to_string(::getpid())));
    fs::remove_all(*directory_);
    fs::create_directories(*directory_);
    std::string jsonl;
    for (int64_t i = 0; i < 300; ++i) {
      const int64_t a = 10 + (i * 37) % 900;
      const int64_t b = 1 + (i * 11) % 90;
      jsonl += nlohmann::json(
                   {{"prompt", "What is " + std::to_string(a) + " + " + std::to_string(b) + "?"},
                    {"answer", std::to_string(a + b)},
                    {"solution", std::to_string(a) + " + " + std::to_string(b) + " = " +
                                     std::to_string(a + b) + ".\nThe answer is \\boxed{" +
                                     std::to_string(a + b) + "}."}})
                   .dump() +
               "\n";
    }
    std::ofstream(*directory_ / "data.jsonl", std::ios::binary) << jsonl;
    const Result trained = gopd("tokenizer train --input data.jsonl --vocab-size 320 --out tok");
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*directory_);
    delete directory_;
  }

  // Runs `gopd ARGS` in the suite's directory.
  static Result gopd(const std::string& args) {
    const std::string out = (*directory_ / "stdout").string();
    const std::string err = (*directory_ / "stderr").string();
    const std::string command = "cd '" + directory_->string() + "' && '" + GOPD_BINARY + "' " +
                                args + " > '" + out + "' 2> '" + err + "'";
    const int status = std::system(command.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = read_all(out);
    result.err = read_all(err);
    return result;
  }

  static void write(const std::string& name, const std::string& content) {
    std::ofstream(*directory_ / name, std::ios::binary) << content;
  }

  static fs::path* directory_;
};

fs::path* TokenizeCli::directory_ = nullptr;

TEST_F(TokenizeCli, TrainWritesATokenizerDirectory) {
  for (const char* name : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"}) {
    EXPECT_TRUE(fs::is_regular_file(*directory_ / "tok" / name)) << name;
  }
  const nlohmann::json config =
      nlohmann::json::parse(read_all(*directory_ / "tok/tokenizer_config.json"));
  EXPECT_EQ(config.at("gopd_chat_format"), "chatml");
}

TEST_F(TokenizeCli, EncodeThenDecodeRoundTrips) {
  write("lines.txt", "What is 12 + 7?\n\n  spaced   out  \nhéllo 日本 🎉\n<|im_start|>user\n");
  const Result encoded = gopd("tokenize --tokenizer tok --input lines.txt");
  ASSERT_EQ(encoded.exit_code, 0) << encoded.err;
  write("ids.txt", encoded.out);
  const Result decoded = gopd("tokenize --tokenizer tok --input ids.txt --decode");
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(
      decoded.out,
      "\"What is 12 + 7?\"\n\"\"\n\"  spaced   out  \"\n\"héllo 日本 🎉\"\n\"<|im_start|>user\"\n");
  // Special tokens are single ids: <|im_start|> is id 4.
  const Result special = gopd("tokenize --tokenizer tok --text '<|im_start|><|im_end|>'");
  EXPECT_EQ(special.out, "[4,5]\n");
  const Result skipped =
      gopd("tokenize --tokenizer tok --text '[4, 5, 1]' --decode --skip-special-tokens");
  EXPECT_EQ(skipped.out, "\"\"\n");
}

TEST_F(TokenizeCli, BadInputExitsTwoWithoutOutput) {
  const Result no_dir = gopd("tokenize --tokenizer nowhere --text x");
  EXPECT_EQ(no_dir.exit_code, 2);
  EXPECT_EQ(no_dir.err,
            "error: nowhere: not a directory (expected a model or tokenizer directory with "
            "tokenizer.json or tokenizer.model)\n");
  write("bad_ids.txt", "[4, 5]\n[4, \"x\"]\n");
  const Result bad_ids = gopd("tokenize --tokenizer tok --input bad_ids.txt --decode");
  EXPECT_EQ(bad_ids.exit_code, 2);
  EXPECT_EQ(bad_ids.out, "");
  EXPECT_EQ(bad_ids.err, "error: bad_ids.txt:2: expected token ids in [0, 320), found \"x\"\n");
  const Result neither = gopd("tokenize --tokenizer tok");
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_EQ(neither.err, "error: gopd tokenize: give --text STRING or --input FILE\n");
  const Result too_small = gopd("tokenizer train --input data.jsonl --vocab-size 50 --out small");
  EXPECT_EQ(too_small.exit_code, 2);
  EXPECT_NE(too_small.err.find("error: --vocab-size 50 is too small for data.jsonl"),
            std::string::npos)
      << too_small.err;
  EXPECT_FALSE(fs::exists(*directory_ / "small"));
  const Result format =
      gopd("tokenizer train --input data.jsonl --vocab-size 320 --out x --chat-format vicuna");
  EXPECT_EQ(format.exit_code, 2);
  EXPECT_EQ(format.err,
            "error: --chat-format: unknown chat format \"vicuna\"; known formats: qwen3, chatml, "
            "llama3, none\n");
}

}  // namespace
