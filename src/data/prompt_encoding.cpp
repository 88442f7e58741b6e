// Implements prompt rendering and encoding for sampling.
#include "gopd/data/prompt_encoding.h"

#include "gopd/core/error.h"
#include "gopd/tokenizer/chat_format.h"

namespace gopd::data {

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

}  // namespace gopd::data
