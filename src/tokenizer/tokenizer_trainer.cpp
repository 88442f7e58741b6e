// Implements train_tokenizer (tokenizer_trainer.h): corpus reading, sentencepiece training
// with the settings documented in the header, and the atomic write of the tokenizer
// directory.
#include "gopd/tokenizer/tokenizer_trainer.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <regex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/core/utf8.h"
#include "gopd/data/jsonl.h"
#include "gopd/tokenizer/chat_format.h"
#include "gopd/tokenizer/sentencepiece_library.h"

namespace gopd::tokenizer {
namespace {

namespace fs = std::filesystem;
using core::throw_bad_input;

// The fixed head of the id layout (tokenizer_trainer.h).
constexpr const char* kPadToken = "<pad>";
constexpr const char* kBosToken = "<s>";
constexpr const char* kEosToken = "</s>";
constexpr const char* kUnkToken = "<unk>";
constexpr unsigned int kTrainingSeed = 20240607;
// The files a tokenizer directory from this trainer holds; only such a directory is replaced.
const char* const kOutputFiles[] = {"tokenizer.model", "tokenizer_config.json",
                                    "special_tokens_map.json"};

bool is_blank(const std::string& text) {
  return text.find_first_not_of(" \t\r\n") == std::string::npos;
}

bool looks_like_jsonl(const std::string& path) {
  std::string extension = fs::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (extension == ".jsonl") return true;
  // Otherwise by content: the first non-blank line is a JSON object.
  std::ifstream input(path, std::ios::binary);
  std::string line;
  while (std::getline(input, line)) {
    if (is_blank(line)) continue;
    if (line[line.find_first_not_of(" \t\r\n")] != '{') return false;
    return nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false).is_object();
  }
  return false;
}

std::vector<std::string> read_text_sentences(const std::string& path) {
  std::ifstream input(path, std::ios::binary);
  if (!input) throw_bad_input(path + ": cannot open file");
  std::vector<std::string> sentences;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(input, line)) {
    ++line_number;
    if (const auto bad = core::find_invalid_utf8(line)) {
      throw_bad_input(path + ":" + std::to_string(line_number) + ": invalid UTF-8 at byte " +
                      std::to_string(*bad + 1) + " of the line");
    }
    if (!line.empty()) sentences.push_back(std::move(line));
  }
  if (input.bad()) core::throw_runtime_failure(path + ": read error");
  return sentences;
}

std::vector<std::string> read_jsonl_sentences(const std::string& path,
                                              const std::string& chat_format) {
  std::vector<std::string> sentences;
  for (const data::JsonlLine& line : data::read_jsonl(path)) {
    const std::string source = path + ":" + std::to_string(line.line);
    const nlohmann::json& object = line.value;
    if (object.contains("prompt")) {
      const data::Record record = data::record_from_json(object, source, line.line);
      std::vector<ChatMessage> messages;
      if (record.prompt.is_string()) {
        messages.push_back({"user", record.prompt.get<std::string>()});
      } else {
        for (const auto& message : record.prompt) {
          messages.push_back(
              {message.at("role").get<std::string>(), message.at("content").get<std::string>()});
        }
      }
      std::string solution;
      if (const auto found = object.find("solution"); found != object.end() && !found->is_null()) {
        if (!found->is_string()) {
          throw_bad_input(source + ": field \"solution\": expected a string");
        }
        solution = found->get<std::string>();
      }
      const std::string response = solution.empty() ? record.answer : solution;
      if (!response.empty()) messages.push_back({"assistant", response});
      try {
        sentences.push_back(render_chat(messages, chat_format, response.empty()));
      } catch (const core::Error& error) {
        throw_bad_input(source + ": " + error.what());
      }
      if (!solution.empty() && !record.answer.empty()) sentences.push_back(record.answer);
    } else if (const auto text = object.find("text"); text != object.end() && text->is_string()) {
      sentences.push_back(text->get<std::string>());
    } else {
      throw_bad_input(source +
                      ": expected a dataset record with a \"prompt\" field, or a \"text\" string");
    }
  }
  return sentences;
}

// Sentencepiece reports a vocabulary size the corpus cannot support in its own terms
// ("required_chars", "character_coverage"); say it in the CLI's terms.
[[noreturn]] void rethrow_training_error(const std::string& message,
                                         const TrainTokenizerOptions& options) {
  std::smatch match;
  static const std::regex kTooSmall(R"(smaller than required_chars\. (\d+) vs (\d+))");
  static const std::regex kTooLarge(R"(too high \((\d+)\)\. Please set it to a value <= (\d+))");
  if (std::regex_search(message, match, kTooSmall)) {
    throw_bad_input("--vocab-size " + std::to_string(options.vocab_size) + " is too small for " +
                    options.input + ": it needs at least " + match[2].str() +
                    " (special tokens, 256 byte-fallback pieces and the corpus' characters)");
  }
  if (std::regex_search(message, match, kTooLarge)) {
    throw_bad_input("--vocab-size " + std::to_string(options.vocab_size) + " is too large for " +
                    options.input + ": at most " + match[2].str() +
                    " pieces can be learned from it; lower --vocab-size or give more text");
  }
  throw_bad_input("--input " + options.input + ": sentencepiece could not train on it: " + message);
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : ",") + item;
  return text;
}

std::string train_model(const std::vector<std::string>& sentences,
                        const TrainTokenizerOptions& options,
                        const std::vector<std::string>& user_defined_symbols) {
  size_t longest = 0;
  for (const std::string& sentence : sentences) longest = std::max(longest, sentence.size());
  std::unordered_map<std::string, std::string> arguments = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      {"character_coverage", "0.9995"},
      {"pad_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"unk_id", "3"},
      {"pad_piece", kPadToken},
      {"bos_piece", kBosToken},
      {"eos_piece", kEosToken},
      {"unk_piece", kUnkToken},
      // Determinism: one thread, every sentence, in order.
      {"num_threads", "1"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      // Sentencepiece silently drops longer sentences (default 4192 bytes).
      {"max_sentence_length", std::to_string(std::min<size_t>(longest + 1, INT_MAX))},
      {"minloglevel", "2"},  // its progress log goes to stderr otherwise
  };
  if (!user_defined_symbols.empty()) arguments["user_defined_symbols"] = join(user_defined_symbols);
  try {
    return spm_train(arguments, sentences, kTrainingSeed);
  } catch (const core::Error& error) {
    rethrow_training_error(error.what(), options);
  }
}

nlohmann::json added_token(const std::string& content, bool special) {
  return {{"content", content}, {"lstrip", false},      {"normalized", false},
          {"rstrip", false},    {"single_word", false}, {"special", special}};
}

nlohmann::json special_token_entry(const std::string& content) {
  return {{"content", content},
          {"lstrip", false},
          {"normalized", false},
          {"rstrip", false},
          {"single_word", false}};
}

// Checks `out` before the work: nothing to replace, an empty directory, or a previous
// output of this trainer.
void check_output_directory(const fs::path& out) {
  std::error_code error;
  if (!fs::exists(out, error)) return;
  if (!fs::is_directory(out, error)) {
    throw_bad_input("--out " + out.string() + ": exists and is not a directory");
  }
  for (const auto& entry : fs::directory_iterator(out, error)) {
    const std::string name = entry.path().filename().string();
    const bool ours =
        std::find(std::begin(kOutputFiles), std::end(kOutputFiles), name) != std::end(kOutputFiles);
    if (!ours) {
      throw_bad_input("--out " + out.string() + ": exists and holds " + name +
                      ", which gopd tokenizer train did not write; choose a new directory or "
                      "remove it");
    }
  }
  if (error) throw_bad_input("--out " + out.string() + ": cannot list it: " + error.message());
}

// Removes a temporary directory unless released (an exception unwound past it).
class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(fs::path path) : path_(std::move(path)) {
    core::remove_stale_temporary(path_.string());
    core::create_directories_for(path_.string(), path_.string());
  }
  ~TemporaryDirectory() {
    if (!released_) {
      std::error_code error;
      fs::remove_all(path_, error);
    }
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  const fs::path& path() const { return path_; }
  void release() { released_ = true; }

 private:
  fs::path path_;
  bool released_ = false;
};

// Renames `staged` onto `out`; a previous `out` is moved aside first and removed after, and
// put back if the rename fails.
void publish(TemporaryDirectory& staged, const fs::path& out) {
  std::error_code error;
  const fs::path previous =
      out.parent_path() / ("." + out.filename().string() + ".old." + std::to_string(::getpid()));
  const bool replacing = fs::exists(out, error);
  if (replacing) {
    fs::rename(out, previous, error);
    if (error) {
      core::throw_runtime_failure(out.string() +
                                  ": cannot move the previous tokenizer aside: " + error.message());
    }
  }
  fs::rename(staged.path(), out, error);
  if (error) {
    std::error_code restore_error;
    if (replacing) fs::rename(previous, out, restore_error);
    core::throw_runtime_failure(out.string() + ": cannot rename " + staged.path().string() +
                                " onto it: " + error.message());
  }
  staged.release();
  if (replacing) fs::remove_all(previous, error);
}

}  // namespace

void train_tokenizer(const TrainTokenizerOptions& options) {
  check_chat_format(options.chat_format, "--chat-format");
  if (options.vocab_size < 1 || options.vocab_size > INT_MAX) {
    throw_bad_input("--vocab-size: expected a positive integer up to " + std::to_string(INT_MAX) +
                    ", got " + std::to_string(options.vocab_size));
  }
  if (options.model_max_length < 1) {
    throw_bad_input("--model-max-length: expected a positive integer, got " +
                    std::to_string(options.model_max_length));
  }
  if (options.out.empty()) throw_bad_input("--out: expected a directory path");
  std::error_code error;
  if (!fs::is_regular_file(options.input, error)) {
    throw_bad_input("--input " + options.input + ": no such file");
  }
  fs::path out = fs::path(options.out).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();  // "dir/" → "dir"
  if (out.empty() || out == "." || out == "..") {
    throw_bad_input("--out " + options.out + ": expected a new directory, not . or ..");
  }
  check_output_directory(out);

  const std::vector<std::string> sentences =
      looks_like_jsonl(options.input) ? read_jsonl_sentences(options.input, options.chat_format)
                                      : read_text_sentences(options.input);
  if (std::all_of(sentences.begin(), sentences.end(), is_blank)) {
    throw_bad_input("--input " + options.input + ": no text to train a tokenizer on");
  }

  const std::vector<std::string> special_tokens = chat_format_special_tokens(options.chat_format);
  const std::vector<std::string> plain_tokens = chat_format_plain_tokens(options.chat_format);
  std::vector<std::string> user_defined_symbols = special_tokens;
  user_defined_symbols.insert(user_defined_symbols.end(), plain_tokens.begin(), plain_tokens.end());
  const std::string model = train_model(sentences, options, user_defined_symbols);

  // The layout the configs below describe is the one sentencepiece produced.
  const SpmProcessor processor = SpmProcessor::from_serialized(model);
  std::vector<std::pair<std::string, bool>> layout = {
      {kPadToken, true}, {kBosToken, true}, {kEosToken, true}, {kUnkToken, true}};
  for (const std::string& token : special_tokens) layout.emplace_back(token, true);
  for (const std::string& token : plain_tokens) layout.emplace_back(token, false);
  nlohmann::json added_tokens_decoder = nlohmann::json::object();
  for (size_t id = 0; id < layout.size(); ++id) {
    if (processor.id_to_piece(static_cast<int>(id)) != layout[id].first) {
      core::throw_runtime_failure("sentencepiece put " +
                                  processor.id_to_piece(static_cast<int>(id)) + " at id " +
                                  std::to_string(id) + ", expected " + layout[id].first);
    }
    added_tokens_decoder[std::to_string(id)] = added_token(layout[id].first, layout[id].second);
  }

  // LlamaTokenizer with legacy=true and add_prefix_space=false encodes with the model as
  // trained (no dummy prefix); no BOS/EOS is added, as in gopd's chat formats.
  const nlohmann::json config = {
      {"add_bos_token", false},
      {"add_eos_token", false},
      {"add_prefix_space", false},
      {"added_tokens_decoder", added_tokens_decoder},
      {"additional_special_tokens", special_tokens},
      {"bos_token", kBosToken},
      {"chat_template", chat_template_jinja(options.chat_format)},
      {"clean_up_tokenization_spaces", false},
      {"eos_token", kEosToken},
      {"gopd_chat_format", options.chat_format},
      {"legacy", true},
      {"model_max_length", options.model_max_length},
      {"pad_token", kPadToken},
      {"sp_model_kwargs", nlohmann::json::object()},
      {"tokenizer_class", "LlamaTokenizer"},
      {"unk_token", kUnkToken},
  };
  nlohmann::json special_tokens_map = {{"bos_token", special_token_entry(kBosToken)},
                                       {"eos_token", special_token_entry(kEosToken)},
                                       {"pad_token", special_token_entry(kPadToken)},
                                       {"unk_token", special_token_entry(kUnkToken)}};
  if (!special_tokens.empty()) special_tokens_map["additional_special_tokens"] = special_tokens;

  if (!out.parent_path().empty()) {
    core::create_directories_for(out.parent_path().string(), out.string());
  }
  TemporaryDirectory staged(out.parent_path() /
                            ("." + out.filename().string() + ".tmp." + std::to_string(::getpid())));
  core::write_file_atomically((staged.path() / "tokenizer.model").string(), model);
  core::write_file_atomically((staged.path() / "tokenizer_config.json").string(),
                              config.dump(2) + "\n");
  core::write_file_atomically((staged.path() / "special_tokens_map.json").string(),
                              special_tokens_map.dump(2) + "\n");
  publish(staged, out);
}

}  // namespace gopd::tokenizer
