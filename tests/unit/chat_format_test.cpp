// Chat formats: render_chat must equal, byte for byte, what Hugging Face transformers'
// apply_chat_template renders — with Qwen3's real chat_template (tests/assets/tokenizers/qwen3)
// and with the template of every format gopd writes (a `gopd tokenizer train --chat-format F`
// directory loaded with AutoTokenizer). tests/reference/chat_reference.py renders them live
// with the venv's transformers; a few exact strings written by hand keep the formats readable.
#include "gopd/tokenizer/chat_format.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>
#include <nlohmann/json.hpp>

#include "gopd/core/error.h"

namespace gopd::tokenizer {
namespace {

// transformers' renders, made once per test binary run. Empty when the venv is missing.
const nlohmann::json& transformers_renders() {
  static const nlohmann::json renders = [] {
    const std::string python = GOPD_PYTHON;
    if (!std::filesystem::exists(python)) return nlohmann::json();
    const std::filesystem::path out = std::filesystem::temp_directory_path() /
                                      ("gopd_chat_renders_" + std::to_string(::getpid()) + ".json");
    std::string formats;
    for (const std::string& name : chat_format_names())
      formats += (formats.empty() ? "" : ",") + name;
    const std::string command = "'" + python +
                                "' '" GOPD_SOURCE_DIR
                                "/tests/reference/chat_reference.py' --gopd '" GOPD_BINARY
                                "' --source '" GOPD_SOURCE_DIR "' --formats " +
                                formats + " --out '" + out.string() + "'";
    const int status = std::system(command.c_str());
    std::ifstream input(out);
    if (status != 0 || !input) {
      ADD_FAILURE() << "chat_reference.py failed (status " << status << "): " << command;
      return nlohmann::json();
    }
    nlohmann::json parsed = nlohmann::json::parse(input);
    std::filesystem::remove(out);
    return parsed;
  }();
  return renders;
}

// Skips without the venv (scripts/setup.sh makes it); fails when the renders could not be made.
#define REQUIRE_TRANSFORMERS()                                          \
  if (!std::filesystem::exists(GOPD_PYTHON)) {                          \
    GTEST_SKIP() << GOPD_PYTHON << " is missing: run scripts/setup.sh"; \
  }                                                                     \
  ASSERT_FALSE(transformers_renders().is_null()) << "chat_reference.py made no renders"

std::vector<ChatMessage> messages_of(const nlohmann::json& case_json) {
  std::vector<ChatMessage> messages;
  for (const auto& message : case_json.at("messages")) {
    messages.push_back(
        {message.at("role").get<std::string>(), message.at("content").get<std::string>()});
  }
  return messages;
}

// Runs `body`, expects an Error with exit code 2 whose message contains `fragment`.
template <typename Body>
void expect_bad_input(Body body, const std::string& fragment) {
  try {
    body();
    ADD_FAILURE() << "expected an error containing: " << fragment;
  } catch (const core::Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

// render_chat(format) against transformers' renders of one template; returns the case count.
int64_t expect_renders_equal(const nlohmann::json& cases, const std::string& format,
                             const std::string& label) {
  std::set<std::string> conversations;
  int64_t compared = 0;
  for (const auto& case_json : cases) {
    const std::string name = case_json.at("name");
    const bool add_generation_prompt = case_json.at("add_generation_prompt");
    const bool enable_thinking = case_json.at("enable_thinking");
    EXPECT_EQ(render_chat(messages_of(case_json), format, add_generation_prompt, enable_thinking),
              case_json.at("text").get<std::string>())
        << label << ": " << name << " add_generation_prompt=" << add_generation_prompt
        << " enable_thinking=" << enable_thinking;
    conversations.insert(name);
    ++compared;
  }
  EXPECT_GE(conversations.size(), 14u) << label;
  EXPECT_EQ(compared, static_cast<int64_t>(4 * conversations.size())) << label;
  return compared;
}

TEST(ChatFormat, Qwen3MatchesTransformersOnTheRealTemplate) {
  REQUIRE_TRANSFORMERS();
  const nlohmann::json& real = transformers_renders().at("qwen3_real");
  // Thinking on and off are both among the cases (enable_thinking=false adds the empty block).
  EXPECT_EQ(expect_renders_equal(real.at("cases"), "qwen3", "Qwen3 real template"), 60);
}

TEST(ChatFormat, EveryFormatMatchesTransformersOnTheTemplateGopdWrites) {
  REQUIRE_TRANSFORMERS();
  for (const std::string& format : chat_format_names()) {
    const nlohmann::json& rendered = transformers_renders().at("formats").at(format);
    // What transformers read from the written tokenizer_config.json is gopd's template.
    EXPECT_EQ(rendered.at("chat_template").get<std::string>(), chat_template_jinja(format))
        << format;
    expect_renders_equal(rendered.at("cases"), format, "gopd " + format + " template");
  }
}

TEST(ChatFormat, Qwen3ExactStrings) {
  const std::vector<ChatMessage> chat = {{"system", "Be brief."}, {"user", "2+3?"}};
  EXPECT_EQ(render_chat(chat, "qwen3", true, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+3?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(chat, "qwen3", true, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+3?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // History reasoning is dropped before the last query; the final turn keeps (or gets) it.
  const std::vector<ChatMessage> history = {{"user", "a"},
                                            {"assistant", "<think>\nr1\n</think>\n\nA1"},
                                            {"user", "b"},
                                            {"assistant", "A2"}};
  EXPECT_EQ(render_chat(history, "qwen3", false),
            "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
            "A2<|im_end|>\n");
}

TEST(ChatFormat, ChatmlLlama3AndNoneExactStrings) {
  const std::vector<ChatMessage> chat = {{"system", " S \n"}, {"user", "hi"}};
  EXPECT_EQ(render_chat(chat, "chatml", true),
            "<|im_start|>system\n S \n<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(chat, "chatml", false),
            "<|im_start|>system\n S \n<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n");
  EXPECT_EQ(render_chat(chat, "llama3", true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat({}, "llama3", true), "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(chat, "none", true), " S \n\nhi");
  EXPECT_EQ(render_chat({{"user", "What is 2+3?"}}, "none", true, false), "What is 2+3?");
  // A run of stray continuation bytes at the edges is not whitespace and is kept (found by
  // fuzzing: the trim's decoder shifted by 32 on it).
  const std::string stray(40, '\x8c');
  EXPECT_EQ(render_chat({{"user", stray}}, "llama3", false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + stray + "<|eot_id|>");
  // chatml and llama3 render any role verbatim, as their templates do.
  EXPECT_EQ(render_chat({{"ipython", "x"}}, "chatml", false), "<|im_start|>ipython\nx<|im_end|>\n");
}

TEST(ChatFormat, BadInputsExitTwo) {
  expect_bad_input(
      [] {
        render_chat({{"user", "x"}}, "mistral", true);
      },
      "unknown chat format \"mistral\"; known formats: qwen3, chatml, llama3, none");
  expect_bad_input(
      [] {
        render_chat({{"user", "x"}, {"tool", "42"}}, "qwen3", true);
      },
      "message 1 has role \"tool\": tool calls are unsupported");
  expect_bad_input([] { render_chat({{"tool", "42"}}, "chatml", true); }, "unsupported");
  expect_bad_input([] { render_chat({}, "qwen3", true); }, "no messages");
  expect_bad_input(
      [] {
        render_chat({{"developer", "x"}}, "qwen3", true);
      },
      "expected system, user or assistant");
  expect_bad_input([] { check_chat_format("", "--chat-format"); },
                   "--chat-format: unknown chat format \"\"");
}

TEST(ChatFormat, DetectsTheFormatOfATemplate) {
  std::ifstream config(GOPD_SOURCE_DIR "/tests/assets/tokenizers/qwen3/tokenizer_config.json");
  EXPECT_EQ(detect_chat_format(nlohmann::json::parse(config).at("chat_template")), "qwen3");
  for (const char* format : {"qwen3", "chatml", "llama3"}) {
    EXPECT_EQ(detect_chat_format(chat_template_jinja(format)), format);
  }
  EXPECT_EQ(detect_chat_format(chat_template_jinja("none")), "");
  EXPECT_EQ(detect_chat_format("{{ bos_token }}[INST] {{ messages[0]['content'] }} [/INST]"), "");
}

TEST(ChatFormat, TokensOfEachFormat) {
  EXPECT_EQ(chat_format_special_tokens("chatml"),
            (std::vector<std::string>{"<|im_start|>", "<|im_end|>"}));
  EXPECT_EQ(chat_format_plain_tokens("qwen3"), (std::vector<std::string>{"<think>", "</think>"}));
  EXPECT_EQ(chat_format_stop_tokens("llama3"), (std::vector<std::string>{"<|eot_id|>"}));
  EXPECT_TRUE(chat_format_special_tokens("none").empty());
  EXPECT_TRUE(chat_format_stop_tokens("none").empty());
}

}  // namespace
}  // namespace gopd::tokenizer
