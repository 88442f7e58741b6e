// The sentencepiece tokenizer, its trainer and load_tokenizer: a tiny model trained on
// generated text must round-trip text exactly, encode special tokens to single ids, train
// deterministically, and turn bad input into exit code 2 with a message that says what is
// wrong.
#include "gopd/tokenizer/sentencepiece_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "gopd/core/error.h"
#include "gopd/tokenizer/chat_format.h"
#include "gopd/tokenizer/tokenizer_trainer.h"

namespace gopd::tokenizer {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kVocabSize = 420;

std::string read_all(const fs::path& path) {
  std::ifstream input(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
}

void write(const fs::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

// Deterministic word problems with worked answers, plus a little non-ASCII text.
std::vector<std::string> corpus_lines() {
  const char* names[] = {"Tom", "Ana", "Lee", "Mia", "Sam"};
  const char* things[] = {"apples", "books", "coins", "pens", "cards"};
  std::vector<std::string> lines;
  uint64_t state = 12345;
  const auto next = [&state](uint64_t bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int64_t>((state >> 33) % bound);
  };
  for (int64_t i = 0; i < 600; ++i) {
    const int64_t a = next(900) + 10;
    const int64_t b = next(90) + 1;
    const std::string name = names[next(5)];
    const std::string thing = things[next(5)];
    lines.push_back(name + " has " + std::to_string(a) + " " + thing + " and buys " +
                    std::to_string(b) + " more. How many " + thing + " does " + name +
                    " have now?");
    lines.push_back("Step 1: " + std::to_string(a) + " + " + std::to_string(b) + " = " +
                    std::to_string(a + b) + ". The answer is \\boxed{" + std::to_string(a + b) +
                    "}.");
    if (i % 50 == 0) lines.push_back("    return x * " + std::to_string(b) + "  # café, naïve");
  }
  return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

template <typename Body>
void expect_bad_input(Body body, const std::string& fragment) {
  try {
    body();
    ADD_FAILURE() << "expected an error containing: " << fragment;
  } catch (const core::Error& error) {
    EXPECT_EQ(error.exit_code(), 2) << error.what();
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

class SentencePieceTest : public ::testing::Test {
 protected:
  // One trained tokenizer for the suite: training is the slow part.
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() /
                         ("gopd_sentencepiece_test_" + std::to_string(::getpid())));
    fs::remove_all(*root_);
    fs::create_directories(*root_);
    write(*root_ / "corpus.txt", join_lines(corpus_lines()));
    TrainTokenizerOptions options;
    options.input = (*root_ / "corpus.txt").string();
    options.vocab_size = kVocabSize;
    options.out = (*root_ / "chatml").string();
    train_tokenizer(options);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
  }

  static fs::path path(const std::string& name) { return *root_ / name; }
  static std::string chatml_dir() { return path("chatml").string(); }
  static std::string chatml_model() { return path("chatml/tokenizer.model").string(); }

  static fs::path* root_;
};

fs::path* SentencePieceTest::root_ = nullptr;

TEST_F(SentencePieceTest, WritesAHuggingFaceDirectory) {
  EXPECT_TRUE(fs::is_regular_file(path("chatml/tokenizer.model")));
  const nlohmann::json config =
      nlohmann::json::parse(read_all(path("chatml/tokenizer_config.json")));
  EXPECT_EQ(config.at("tokenizer_class"), "LlamaTokenizer");
  EXPECT_EQ(config.at("gopd_chat_format"), "chatml");
  EXPECT_EQ(config.at("chat_template"), chat_template_jinja("chatml"));
  EXPECT_EQ(config.at("bos_token"), "<s>");
  EXPECT_EQ(config.at("eos_token"), "</s>");
  EXPECT_EQ(config.at("pad_token"), "<pad>");
  EXPECT_EQ(config.at("model_max_length"), 4096);
  EXPECT_EQ(config.at("add_bos_token"), false);
  EXPECT_EQ(config.at("added_tokens_decoder").size(), 6u);
  EXPECT_EQ(config.at("added_tokens_decoder").at("4").at("content"), "<|im_start|>");
  EXPECT_EQ(config.at("added_tokens_decoder").at("5").at("special"), true);
  const nlohmann::json map =
      nlohmann::json::parse(read_all(path("chatml/special_tokens_map.json")));
  EXPECT_EQ(map.at("eos_token").at("content"), "</s>");
  EXPECT_EQ(map.at("additional_special_tokens"),
            (std::vector<std::string>{"<|im_start|>", "<|im_end|>"}));
  // Nothing but the three files, and no temporary directory left beside it.
  int64_t entries = 0;
  for (const auto& entry : fs::directory_iterator(*root_)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos);
    ++entries;
  }
  EXPECT_EQ(entries, 2);  // corpus.txt, chatml
}

TEST_F(SentencePieceTest, IdLayout) {
  const auto tokenizer = load_sentencepiece_tokenizer(chatml_model());
  EXPECT_EQ(tokenizer->vocab_size(), kVocabSize);
  const std::vector<std::string> head = {"<pad>",        "<s>",        "</s>",  "<unk>",
                                         "<|im_start|>", "<|im_end|>", "<0x00>"};
  for (size_t id = 0; id < head.size(); ++id) {
    EXPECT_EQ(tokenizer->id_to_token(static_cast<int64_t>(id)), head[id]);
    EXPECT_EQ(tokenizer->token_to_id(head[id]), static_cast<int64_t>(id));
  }
  EXPECT_EQ(tokenizer->token_to_id("<0xFF>"), 261);
  EXPECT_EQ(tokenizer->token_to_id("no such piece"), std::nullopt);
  EXPECT_TRUE(tokenizer->is_special(0) && tokenizer->is_special(1) && tokenizer->is_special(3));
  EXPECT_FALSE(tokenizer->is_special(4));  // user-defined; special only when the config says so
  EXPECT_FALSE(tokenizer->is_special(kVocabSize));
}

TEST_F(SentencePieceTest, RoundTripIsExact) {
  const LoadedTokenizer loaded = load_tokenizer(chatml_dir());
  const std::vector<std::string> texts = {
      "",
      "Tom has 37 apples and buys 12 more.",
      "The answer is \\boxed{49}.",
      "1234567890",
      "  two leading spaces",
      "trailing spaces   ",
      "many     inner      spaces",
      "line one\nline two\n",
      "\n\n\nnewlines only at the start",
      "tabs\tand\ttabs\t",
      "windows\r\nline end",
      "    return x * 3  # indented code",
      "café naïve résumé",
      "日本語のテキスト",
      "emoji 🎉🚀 and 😀",
      "mixed: 3.14159 × 2 = 6.28318",
      "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n",
      "<s>bos and eos</s> written as text",
      "<pad><unk> literal specials",
      "almost special: <|im_start| and <s and </ s>",
      "quotes \"double\" and 'single' and `back`",
      "zero-width\u200bjoiner and \u00a0no-break space",
      "ALL CAPS WORDS NEVER SEEN",
      "{\"json\": [1, 2, 3]}",
      " ",
  };
  for (const std::string& text : texts) {
    const std::vector<int64_t> ids = loaded.tokenizer->encode(text);
    EXPECT_EQ(loaded.tokenizer->decode(ids), text) << "ids " << nlohmann::json(ids).dump();
    if (text.find("<unk>") != std::string::npos) continue;  // the literal token is <unk>'s id
    for (const int64_t id : ids) EXPECT_NE(id, 3) << "no <unk> with byte fallback: " << text;
  }
  // Learned pieces make seen text shorter than one id per byte.
  EXPECT_LT(loaded.tokenizer->encode("Tom has 37 apples and buys 12 more.").size(), 25u);
}

TEST_F(SentencePieceTest, DigitsAreSplit) {
  const auto tokenizer = load_sentencepiece_tokenizer(chatml_model());
  const std::vector<int64_t> ids = tokenizer->encode("90210");
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(tokenizer->decode({ids[0]}), "9");
  EXPECT_EQ(tokenizer->decode({ids[4]}), "0");
}

TEST_F(SentencePieceTest, SpecialTokensEncodeToSingleIds) {
  const LoadedTokenizer loaded = load_tokenizer(chatml_dir());
  const Tokenizer& tokenizer = *loaded.tokenizer;
  EXPECT_EQ(tokenizer.encode("<|im_start|>"), (std::vector<int64_t>{4}));
  EXPECT_EQ(tokenizer.encode("<|im_end|>"), (std::vector<int64_t>{5}));
  EXPECT_EQ(tokenizer.encode("<s>"), (std::vector<int64_t>{1}));
  EXPECT_EQ(tokenizer.encode("</s>"), (std::vector<int64_t>{2}));
  EXPECT_EQ(tokenizer.encode("<pad>"), (std::vector<int64_t>{0}));
  EXPECT_EQ(tokenizer.encode("<unk>"), (std::vector<int64_t>{3}));
  const std::string chat = render_chat({{"user", "2+3?"}}, "chatml", true);
  const std::vector<int64_t> ids = tokenizer.encode(chat);
  EXPECT_EQ(ids.front(), 4);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 4), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 5), 1);
  EXPECT_EQ(tokenizer.decode(ids), chat);
  // The config marks the turn markers special: skip_special_tokens drops them.
  EXPECT_TRUE(tokenizer.is_special(4));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("<s><|im_start|>user\nhi<|im_end|></s>"), true),
            "user\nhi");
  // gopd's tokenizers add no BOS (add_bos_token=false); a bare model follows LlamaTokenizer.
  EXPECT_EQ(tokenizer.encode("hi", true), tokenizer.encode("hi", false));
  const auto bare = load_sentencepiece_tokenizer(chatml_model());
  EXPECT_EQ(bare->encode("hi", true).front(), 1);
  EXPECT_EQ(bare->encode("hi", true).size(), bare->encode("hi").size() + 1);
}

TEST_F(SentencePieceTest, AddedTokensTheModelLacksAreAppended) {
  const auto tokenizer = load_sentencepiece_tokenizer(chatml_model(), {"<extra_0>", "<s>"});
  EXPECT_EQ(tokenizer->vocab_size(), kVocabSize + 1);
  EXPECT_EQ(tokenizer->token_to_id("<extra_0>"), kVocabSize);
  EXPECT_EQ(tokenizer->token_to_id("<s>"), 1);
  const std::vector<int64_t> ids = tokenizer->encode("a<extra_0>b");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], kVocabSize);
  EXPECT_TRUE(tokenizer->is_special(kVocabSize));
  EXPECT_EQ(tokenizer->decode(ids), "a<extra_0>b");
  EXPECT_EQ(tokenizer->decode(ids, true), "ab");
  expect_bad_input([&] { tokenizer->decode({kVocabSize + 1}); }, "token id 421 is out of range");
  expect_bad_input([&] { tokenizer->id_to_token(-1); }, "out of range");
}

TEST_F(SentencePieceTest, TrainingIsDeterministic) {
  TrainTokenizerOptions options;
  options.input = path("corpus.txt").string();
  options.vocab_size = kVocabSize;
  options.out = path("again").string();
  train_tokenizer(options);
  EXPECT_EQ(read_all(path("again/tokenizer.model")), read_all(path("chatml/tokenizer.model")));
  EXPECT_EQ(read_all(path("again/tokenizer_config.json")),
            read_all(path("chatml/tokenizer_config.json")));
  // Training into an existing output directory replaces it.
  options.vocab_size = kVocabSize - 20;
  train_tokenizer(options);
  EXPECT_EQ(load_sentencepiece_tokenizer(path("again/tokenizer.model").string())->vocab_size(),
            kVocabSize - 20);
  fs::remove_all(path("again"));
}

TEST_F(SentencePieceTest, TrainsOnAJsonlDatasetInTheQwen3Format) {
  std::string jsonl;
  const std::vector<std::string> lines = corpus_lines();
  for (size_t i = 0; i + 1 < lines.size(); i += 2) {
    nlohmann::json record = {{"prompt", lines[i]}, {"answer", std::to_string(i)}};
    if (i % 4 == 0) record["solution"] = lines[i + 1] + "\nDone.";
    if (i % 8 == 2) {
      record["prompt"] = nlohmann::json::array({{{"role", "system"}, {"content", "Solve it."}},
                                                {{"role", "user"}, {"content", lines[i]}}});
    }
    jsonl += record.dump() + "\n";
  }
  write(path("data.jsonl"), jsonl);
  TrainTokenizerOptions options;
  options.input = path("data.jsonl").string();
  options.vocab_size = 400;
  options.out = path("qwen3").string();
  options.chat_format = "qwen3";
  train_tokenizer(options);
  const LoadedTokenizer loaded = load_tokenizer(options.out);
  EXPECT_EQ(loaded.info.chat_format, "qwen3");
  const Tokenizer& tokenizer = *loaded.tokenizer;
  EXPECT_EQ(tokenizer.token_to_id("<think>"), 6);
  EXPECT_EQ(tokenizer.token_to_id("</think>"), 7);
  EXPECT_EQ(tokenizer.token_to_id("<0x00>"), 8);
  EXPECT_FALSE(tokenizer.is_special(6));  // reasoning markers survive skip_special_tokens
  const std::string chat = render_chat({{"user", lines[0]},
                                        {"assistant",
                                         "<think>\nhm\n</think>\n\n"
                                         "The answer is 3."}},
                                       "qwen3", false);
  const std::vector<int64_t> ids = tokenizer.encode(chat);
  EXPECT_EQ(tokenizer.decode(ids), chat);
  EXPECT_EQ(tokenizer.decode(ids, true).substr(0, 5), "user\n");
  EXPECT_NE(tokenizer.decode(ids, true).find("<think>\nhm\n</think>"), std::string::npos);
  // "\n" inside JSONL fields is a vocabulary character, not a byte piece.
  EXPECT_TRUE(tokenizer.token_to_id("\n").has_value());
  // A JSONL dataset is recognised by its content too.
  fs::copy_file(path("data.jsonl"), path("data.txt"));
  options.input = path("data.txt").string();
  options.out = path("qwen3_from_txt").string();
  train_tokenizer(options);
  EXPECT_EQ(read_all(path("qwen3_from_txt/tokenizer.model")),
            read_all(path("qwen3/tokenizer.model")));
  for (const char* name : {"data.jsonl", "data.txt", "qwen3", "qwen3_from_txt"}) {
    fs::remove_all(path(name));
  }
}

TEST_F(SentencePieceTest, LoadTokenizerInfo) {
  const LoadedTokenizer loaded = load_tokenizer(chatml_dir());
  EXPECT_EQ(loaded.info.bos_id, 1);
  EXPECT_EQ(loaded.info.eos_id, 2);
  EXPECT_EQ(loaded.info.pad_id, 0);
  EXPECT_EQ(loaded.info.chat_format, "chatml");
  EXPECT_EQ(loaded.info.stop_ids, (std::vector<int64_t>{2, 5}));

  // A hand-written directory: object-form tokens, null pad, generation_config eos list, and
  // the format recognised from Qwen3's real template.
  const fs::path dir = path("handmade");
  fs::create_directories(dir);
  fs::copy_file(chatml_model(), dir / "tokenizer.model", fs::copy_options::overwrite_existing);
  const nlohmann::json qwen3 = nlohmann::json::parse(
      read_all(fs::path(GOPD_SOURCE_DIR) / "tests/assets/tokenizers/qwen3/tokenizer_config.json"));
  nlohmann::json config = {{"bos_token", {{"content", "<s>"}, {"lstrip", false}}},
                           {"eos_token", "<|im_end|>"},
                           {"pad_token", nullptr},
                           {"chat_template", qwen3.at("chat_template")}};
  write(dir / "tokenizer_config.json", config.dump());
  write(dir / "generation_config.json", R"({"eos_token_id": [5, 2, 9]})");
  LoadedTokenizer handmade = load_tokenizer(dir.string());
  EXPECT_EQ(handmade.info.bos_id, 1);
  EXPECT_EQ(handmade.info.eos_id, 5);
  EXPECT_EQ(handmade.info.pad_id, -1);
  EXPECT_EQ(handmade.info.chat_format, "qwen3");
  EXPECT_EQ(handmade.info.stop_ids, (std::vector<int64_t>{5, 2, 9}));

  // No configs at all: the model's own ids, no chat format, BOS added like LlamaTokenizer.
  fs::remove(dir / "tokenizer_config.json");
  write(dir / "generation_config.json", R"({"eos_token_id": 2})");
  handmade = load_tokenizer(dir.string());
  EXPECT_EQ(handmade.info.bos_id, 1);
  EXPECT_EQ(handmade.info.eos_id, 2);
  EXPECT_EQ(handmade.info.pad_id, 0);
  EXPECT_EQ(handmade.info.chat_format, "none");
  EXPECT_EQ(handmade.info.stop_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(handmade.tokenizer->encode("x", true).front(), 1);
  fs::remove_all(dir);
}

TEST_F(SentencePieceTest, LoadTokenizerBadInputs) {
  const fs::path dir = path("broken");
  fs::create_directories(dir);
  expect_bad_input([&] { load_tokenizer(path("nowhere").string()); }, "not a directory");
  expect_bad_input([&] { load_tokenizer(dir.string()); },
                   "has neither tokenizer.json nor tokenizer.model");
  write(dir / "tokenizer.model", "not a model");
  expect_bad_input([&] { load_tokenizer(dir.string()); },
                   "tokenizer.model: not a readable sentencepiece model");
  fs::copy_file(chatml_model(), dir / "tokenizer.model", fs::copy_options::overwrite_existing);
  const auto expect_config_error = [&](const std::string& config, const std::string& fragment) {
    write(dir / "tokenizer_config.json", config);
    expect_bad_input([&] { load_tokenizer(dir.string()); }, fragment);
  };
  expect_config_error("{\"eos_token\": ", "tokenizer_config.json: malformed JSON");
  expect_config_error("[1]", "tokenizer_config.json: expected a JSON object");
  expect_config_error(R"({"eos_token": 7})", "tokenizer_config.json: eos_token: expected a string");
  expect_config_error(R"({"eos_token": "<|endoftext|>"})",
                      "eos_token: token \"<|endoftext|>\" is not in the tokenizer's vocabulary");
  expect_config_error(R"({"added_tokens_decoder": {"7": {"content": "<|im_end|>"}}})",
                      "added_tokens_decoder[\"7\"] is \"<|im_end|>\", but the tokenizer gives "
                      "it id 5");
  expect_config_error(R"({"gopd_chat_format": "vicuna"})",
                      "gopd_chat_format: unknown chat format \"vicuna\"; known formats: qwen3, "
                      "chatml, llama3, none");
  write(dir / "tokenizer_config.json", "{}");
  write(dir / "generation_config.json", R"({"eos_token_id": "</s>"})");
  expect_bad_input([&] { load_tokenizer(dir.string()); },
                   "generation_config.json: eos_token_id: expected token ids");
  fs::remove_all(dir);
}

TEST_F(SentencePieceTest, TrainerBadInputs) {
  TrainTokenizerOptions options;
  options.input = path("corpus.txt").string();
  options.vocab_size = kVocabSize;
  options.out = path("bad_out").string();

  TrainTokenizerOptions missing = options;
  missing.input = path("missing.txt").string();
  expect_bad_input([&] { train_tokenizer(missing); }, "missing.txt: no such file");

  TrainTokenizerOptions too_small = options;
  too_small.vocab_size = 100;
  expect_bad_input([&] { train_tokenizer(too_small); },
                   "--vocab-size 100 is too small for " + options.input + ": it needs at least");

  TrainTokenizerOptions too_large = options;
  too_large.vocab_size = 100000;
  expect_bad_input([&] { train_tokenizer(too_large); },
                   "--vocab-size 100000 is too large for " + options.input + ": at most");

  TrainTokenizerOptions format = options;
  format.chat_format = "alpaca";
  expect_bad_input([&] { train_tokenizer(format); },
                   "--chat-format: unknown chat format \"alpaca\"; known formats: qwen3, chatml, "
                   "llama3, none");

  write(path("empty.txt"), "\n\n");
  TrainTokenizerOptions empty = options;
  empty.input = path("empty.txt").string();
  expect_bad_input([&] { train_tokenizer(empty); }, "no text to train a tokenizer on");

  write(path("latin1.txt"), "ok\ncaf\xe9\n");
  TrainTokenizerOptions latin1 = options;
  latin1.input = path("latin1.txt").string();
  expect_bad_input([&] { train_tokenizer(latin1); }, "latin1.txt:2: invalid UTF-8 at byte 4");

  write(path("bad.jsonl"), "{\"prompt\": \"x\", \"answer\": \"1\"}\n{\"question\": \"y\"}\n");
  TrainTokenizerOptions bad_jsonl = options;
  bad_jsonl.input = path("bad.jsonl").string();
  expect_bad_input([&] { train_tokenizer(bad_jsonl); },
                   "bad.jsonl:2: expected a dataset record with a \"prompt\" field");

  // None of the failures above left an output or temporary directory behind.
  for (const auto& entry : fs::directory_iterator(*root_)) {
    EXPECT_EQ(entry.path().filename().string().find("bad_out"), std::string::npos) << entry.path();
  }

  // A directory with files the trainer did not write is never replaced.
  fs::create_directories(path("model_dir"));
  write(path("model_dir/config.json"), "{}");
  TrainTokenizerOptions foreign = options;
  foreign.out = path("model_dir").string();
  expect_bad_input([&] { train_tokenizer(foreign); },
                   "exists and holds config.json, which gopd tokenizer train did not write");
  EXPECT_EQ(read_all(path("model_dir/config.json")), "{}");
  fs::remove_all(path("model_dir"));
  fs::remove(path("empty.txt"));
  fs::remove(path("latin1.txt"));
  fs::remove(path("bad.jsonl"));
}

}  // namespace
}  // namespace gopd::tokenizer
