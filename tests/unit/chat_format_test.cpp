// Chat formats: render_chat must equal, byte for byte, what Hugging Face's Jinja engine
// renders — with Qwen3's real chat_template (tests/assets/tokenizer_reference/qwen3_chat.json)
// and with the templates gopd writes into tokenizer_config.json (gopd_chat_templates.json).
// Both files are recorded by scripts/record_chat_reference.py; a few exact strings written by
// hand keep the formats readable here.
#include "gopd/tokenizer/chat_format.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "gopd/core/error.h"

namespace gopd::tokenizer {
namespace {

nlohmann::json read_reference(const std::string& name) {
  const std::string path =
      std::string(GOPD_SOURCE_DIR) + "/tests/assets/tokenizer_reference/" + name;
  std::ifstream input(path);
  EXPECT_TRUE(input.good()) << "missing " << path << " (run scripts/record_chat_reference.py)";
  return nlohmann::json::parse(input);
}

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

TEST(ChatFormat, Qwen3MatchesTheRealTemplate) {
  const nlohmann::json reference = read_reference("qwen3_chat.json");
  std::set<std::string> conversations;
  int64_t compared = 0;
  for (const auto& case_json : reference.at("cases")) {
    const std::string name = case_json.at("name");
    const bool add_generation_prompt = case_json.at("add_generation_prompt");
    const bool enable_thinking = case_json.at("enable_thinking");
    EXPECT_EQ(render_chat(messages_of(case_json), "qwen3", add_generation_prompt, enable_thinking),
              case_json.at("text").get<std::string>())
        << name << " add_generation_prompt=" << add_generation_prompt
        << " enable_thinking=" << enable_thinking;
    conversations.insert(name);
    ++compared;
  }
  EXPECT_GE(conversations.size(), 8u);
  EXPECT_EQ(compared, static_cast<int64_t>(4 * conversations.size()));
}

TEST(ChatFormat, EveryFormatMatchesItsWrittenTemplate) {
  const nlohmann::json reference = read_reference("gopd_chat_templates.json");
  for (const std::string& format : chat_format_names()) {
    const auto& recorded = reference.at("formats").at(format);
    // A stale recording would test a template gopd no longer writes.
    EXPECT_EQ(chat_template_jinja(format), recorded.at("chat_template").get<std::string>())
        << format << ": rerun scripts/record_chat_reference.py";
    EXPECT_GE(recorded.at("cases").size(), 60u) << format;
    for (const auto& case_json : recorded.at("cases")) {
      EXPECT_EQ(render_chat(messages_of(case_json), format, case_json.at("add_generation_prompt"),
                            case_json.at("enable_thinking")),
                case_json.at("text").get<std::string>())
          << format << " " << case_json.at("name")
          << " add_generation_prompt=" << case_json.at("add_generation_prompt")
          << " enable_thinking=" << case_json.at("enable_thinking");
    }
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
  EXPECT_EQ(detect_chat_format(read_reference("qwen3_chat.json").at("chat_template")), "qwen3");
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
