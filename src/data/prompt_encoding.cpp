// Implements prompt rendering and encoding for sampling.
#include "gopd/data/prompt_encoding.h"

#include <algorithm>

#include "gopd/core/error.h"
#include "gopd/tokenizer/chat_format.h"

namespace gopd::data {

PromptFormat prompt_format(const std::string& chat_format) {
  PromptFormat format;
  format.chat_format = chat_format == "qwen3_no_think" ? "qwen3" : chat_format;
  format.enable_thinking = chat_format != "qwen3_no_think";
  return format;
}

std::string prompt_text_for_model(const Record& record, const PromptFormat& format) {
  if (format.chat_format == "none") return record.prompt_text();
  std::vector<tokenizer::ChatMessage> messages;
  if (record.prompt.is_string()) {
    messages.push_back({"user", record.prompt.get<std::string>()});
  } else {
    for (const auto& message : record.prompt) {
      messages.push_back(
          {message.at("role").get<std::string>(), message.at("content").get<std::string>()});
    }
  }
  try {
    return tokenizer::render_chat(messages, format.chat_format, /*add_generation_prompt=*/true,
                                  format.enable_thinking);
  } catch (const core::Error& error) {
    throw core::Error(error.code(), record.source + ": " + error.what());
  }
}

std::vector<int64_t> encode_prompt(const Record& record, const PromptFormat& format,
                                   const tokenizer::Tokenizer& tokenizer) {
  std::vector<int64_t> ids = tokenizer.encode(prompt_text_for_model(record, format));
  if (ids.empty()) core::throw_bad_input(record.source + ": the prompt encodes to no tokens");
  return ids;
}

std::pair<int64_t, int64_t> user_text_span(const Record& record, const PromptFormat& format,
                                           const tokenizer::Tokenizer& tokenizer,
                                           const std::vector<int64_t>& ids) {
  const int64_t size = int64_t(ids.size());
  if (format.chat_format == "none") return {std::min<int64_t>(1, size), size};
  // The user's text: the prompt string, or the last user message.
  std::string text;
  if (record.prompt.is_string()) {
    text = record.prompt.get<std::string>();
  } else {
    for (const auto& message : record.prompt) {
      if (message.at("role").get<std::string>() == "user") text = message.at("content").get<std::string>();
    }
  }
  const std::string rendered = prompt_text_for_model(record, format);
  const size_t at = text.empty() ? std::string::npos : rendered.rfind(text);
  if (at == std::string::npos) return {size, size};
  const std::string prefix = rendered.substr(0, at);
  const std::string suffix = rendered.substr(at + text.size());
  // Token counts of the template before and after the text; one token on each side of the
  // text is left out in case the tokenizer merged across the boundary.
  const int64_t before = prefix.empty() ? 0 : int64_t(tokenizer.encode(prefix).size()) + 1;
  const int64_t after = suffix.empty() ? 0 : int64_t(tokenizer.encode(suffix, false).size()) + 1;
  const int64_t first = std::max<int64_t>(1, before);
  const int64_t last = std::max<int64_t>(first, size - after);
  return {std::min(first, size), std::min(last, size)};
}

}  // namespace gopd::data
