// LENS's eligibility: data::user_text_span on the real Qwen3 tokenizer for each chat format. The
// span holds only tokens of the user's own text (it decodes to a piece of it), covers all of it
// but at most one token at each edge, never holds a chat-template token or position 0, and a
// plain prompt is eligible from position 1 on.
#include <gtest/gtest.h>

#include <string>

#include "gopd/data/prompt_encoding.h"
#include "gopd/tokenizer/tokenizer.h"

namespace {

using namespace gopd;

TEST(UserTextSpan, OnlyTheUsersTextIsEligibleInEveryFormat) {
  const tokenizer::LoadedTokenizer loaded =
      tokenizer::load_tokenizer(std::string(GOPD_SOURCE_DIR) + "/tests/assets/tokenizers/qwen3");
  const tokenizer::Tokenizer& tok = *loaded.tokenizer;
  const std::string text = "Start with 12. Add 7. Multiply the result by 3. What is the final number?";
  data::Record record;
  record.prompt = text;
  const int64_t whole = int64_t(tok.encode(text, false).size());
  for (const std::string format : {"none", "chatml", "qwen3"}) {
    SCOPED_TRACE(format);
    data::PromptFormat prompt_format;
    prompt_format.chat_format = format;
    const std::vector<int64_t> ids = data::encode_prompt(record, prompt_format, tok);
    const auto [first, last] = data::user_text_span(record, prompt_format, tok, ids);
    ASSERT_LT(first, last);
    EXPECT_GE(first, 1);
    EXPECT_LE(last, int64_t(ids.size()));
    const std::vector<int64_t> span(ids.begin() + first, ids.begin() + last);
    const std::string inside = tok.decode(span, false);
    EXPECT_NE(text.find(inside), std::string::npos) << "'" << inside << "' is not a piece of the user's text";
    // All of the text but at most one token at each edge (and position 0 for a plain prompt).
    EXPECT_GE(last - first, whole - 2) << inside;
    if (format == "none") {
      EXPECT_EQ(first, 1);
      EXPECT_EQ(last, int64_t(ids.size()));
    } else {
      // No template token inside: <|im_start|>, <|im_end|>, "user", "assistant" and newlines
      // stay outside the span.
      EXPECT_EQ(inside.find("<|im_"), std::string::npos) << inside;
      EXPECT_EQ(inside.find('\n'), std::string::npos) << inside;
      EXPECT_GT(int64_t(ids.size()) - (last - first), 4);
    }
  }
}

}  // namespace
