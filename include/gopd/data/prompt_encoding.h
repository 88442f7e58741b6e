// A dataset record's prompt as token ids for sampling: plain text as is, or — with a chat
// format — the conversation rendered with the generation prompt (a string prompt is one
// user message). Shared by `gopd generate`, `gopd eval` and the trainers.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gopd/data/record.h"
#include "gopd/tokenizer/tokenizer.h"

namespace gopd::data {

struct PromptFormat {
  std::string chat_format = "none";  // none = raw text (messages joined by "\n")
  bool enable_thinking = true;       // qwen3 only
};

// The format of a chat-format name as configs spell it (student.chat_format, after "auto" is
// resolved from the tokenizer): "qwen3_no_think" is Qwen3's template with enable_thinking=False.
PromptFormat prompt_format(const std::string& chat_format);

// The text the model is prompted with.
std::string prompt_text_for_model(const Record& record, const PromptFormat& format);

std::vector<int64_t> encode_prompt(const Record& record, const PromptFormat& format,
                                   const tokenizer::Tokenizer& tokenizer);

// Positions [first, last) of `ids` (encode_prompt's output for this record) that hold the
// user's own text, for LENS's purification: chat-template tokens are outside it, and so are
// the tokens at the text's edges that the tokenizer may have merged with the template, and
// position 0 (no context to score it). Plain prompts: [1, size). Empty when nothing is left.
std::pair<int64_t, int64_t> user_text_span(const Record& record, const PromptFormat& format,
                                           const tokenizer::Tokenizer& tokenizer,
                                           const std::vector<int64_t>& ids);

}  // namespace gopd::data
