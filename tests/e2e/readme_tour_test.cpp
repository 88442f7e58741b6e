// The README's "Tour of the subcommands" as a user runs it: every command line of its sh block,
// in order, in one working directory that holds what `make demo` leaves behind (demo_out/ with
// the data and the models configs/quickstart.yaml starts from — tiny stand-ins here) and the
// repository's configs/ and examples/. The lines run as written, with smaller counts so that the
// suite stays fast: `--n` of gopd data divided by 5, `train.max_steps` by 50 (so that a
// `--resume auto` line still extends the run before it), `--samples` 2, and `--max-new-tokens 4`
// (generate, eval) or short rollouts (train) appended. Every line must exit 0; the files the
// tour promises must be there at the end.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::temp_directory_path() / ("gopd_readme_tour_" + std::to_string(getpid()));

std::string read_file(const fs::path& path) {
  std::ifstream input(path, std::ios::binary);
  std::stringstream text;
  text << input.rdbuf();
  return text.str();
}

// Runs a bash command line in kDir; returns the exit code, with stderr in `err`.
int shell(const std::string& line, std::string& err) {
  const fs::path err_file = kDir / ".tour_stderr";
  const fs::path script = kDir / ".tour_line.sh";
  std::ofstream(script) << "set -e\ncd '" << kDir.string() << "'\n" << line << "\n";
  const std::string command = "bash '" + script.string() + "' > /dev/null 2> '" + err_file.string() + "'";
  const int status = std::system(command.c_str());
  err = read_file(err_file);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string gopd() { return std::string("'") + GOPD_BINARY + "'"; }

// The command lines of the tour's sh block (comment lines and blank lines left out).
std::vector<std::string> tour_lines() {
  const std::string readme = read_file(fs::path(GOPD_SOURCE_DIR) / "README.md");
  const size_t section = readme.find("## Tour of the subcommands");
  EXPECT_NE(section, std::string::npos) << "README.md has no tour section";
  const size_t open = readme.find("```sh\n", section);
  const size_t close = readme.find("```", open + 6);
  EXPECT_NE(open, std::string::npos);
  std::vector<std::string> lines;
  std::istringstream block(readme.substr(open + 6, close - open - 6));
  for (std::string line; std::getline(block, line);) {
    const size_t first = line.find_first_not_of(' ');
    if (first == std::string::npos || line[first] == '#') continue;
    lines.push_back(line);
  }
  return lines;
}

// The line with smaller counts, gopd replaced by the built binary, extras before its comment.
std::string scaled(const std::string& line) {
  std::smatch match;
  std::string code = line;
  std::string comment;
  if (std::regex_search(line, match, std::regex(R"(\s+#\s.*$)"))) {
    code = line.substr(0, size_t(match.position(0)));
    comment = match.str(0);
  }
  const auto divide = [](const std::string& text, const std::regex& pattern, int64_t by) {
    std::string out;
    size_t last = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), pattern); it != std::sregex_iterator(); ++it) {
      const size_t number_at = size_t(it->position(2));
      out += text.substr(last, number_at - last);
      out += std::to_string(std::max<int64_t>(1, std::stoll(it->str(2)) / by));
      last = number_at + size_t(it->length(2));
    }
    return out + text.substr(last);
  };
  std::string subcommand;
  std::smatch words;
  if (std::regex_search(code, words, std::regex(R"(^gopd\s+(\S+))"))) subcommand = words.str(1);
  if (subcommand == "data") code = divide(code, std::regex(R"((--n\s+)(\d+))"), 5);
  code = divide(code, std::regex(R"((train\.max_steps=)(\d+))"), 50);
  code = std::regex_replace(code, std::regex(R"(--samples\s+\d+)"), "--samples 2");
  if (subcommand == "generate" || subcommand == "eval") code += " --max-new-tokens 4";
  if (subcommand == "train") {
    code += " --set rollout.batch_prompts=4 --set optim.micro_batch_size=4 --set rollout.max_new_tokens=8"
            " --set eval.max_new_tokens=4 --set run.threads=2";
  }
  if (code.rfind("gopd ", 0) == 0) code = gopd() + code.substr(4);
  return code + comment;
}

TEST(ReadmeTour, RunsTopToBottomAsWritten) {
  fs::remove_all(kDir);
  fs::create_directories(kDir / "demo_out/models");
  fs::create_directory_symlink(fs::path(GOPD_SOURCE_DIR) / "configs", kDir / "configs");
  fs::create_directory_symlink(fs::path(GOPD_SOURCE_DIR) / "examples", kDir / "examples");
  // What `make demo` leaves: the data and the models, tiny.
  std::string err;
  const std::string g = gopd();
  const std::string model = " --arch qwen3 --hidden 32 --layers 2 --heads 4 --kv-heads 2 --intermediate 64"
                            " --tokenizer demo_out/tokenizer --out demo_out/models/";
  for (const std::string& setup :
       {g + " data --task arith --n 200 --difficulty 2 --seed 1 --split train --out demo_out/arith_train.jsonl",
        g + " data --task arith --n 8 --difficulty 2 --seed 2 --split eval --out demo_out/arith_eval.jsonl",
        g + " tokenizer train --input demo_out/arith_train.jsonl --vocab-size 400 --chat-format chatml"
            " --out demo_out/tokenizer",
        g + " init-model" + model + "student-init --seed 1", g + " init-model" + model + "arith-student-base --seed 2",
        g + " init-model" + model + "arith-teacher --seed 3"}) {
    ASSERT_EQ(shell(setup, err), 0) << setup << "\n" << err;
  }
  const std::vector<std::string> lines = tour_lines();
  ASSERT_GE(lines.size(), 20u) << "the tour lost its commands";
  for (const std::string& line : lines) {
    const std::string command = scaled(line);
    EXPECT_EQ(shell(command, err), 0) << "README line: " << line << "\nran: " << command << "\n" << err;
  }
  // What the tour says its lines make.
  for (const std::string made : {"train.jsonl", "eval.jsonl", "noisy.jsonl", "code.jsonl", "scored.jsonl",
                                 "tok/tokenizer.model", "tiny/model.safetensors", "runs/sft-tiny/checkpoints/step_4",
                                 "runs/quickstart/checkpoints/step_3", "texts.jsonl", "samples.jsonl",
                                 "runs/eval-tiny/summary.json"}) {
    EXPECT_TRUE(fs::exists(kDir / made)) << made;
  }
  if (!::testing::Test::HasFailure()) fs::remove_all(kDir);
}

}  // namespace
