// Chat formats: how a conversation becomes the one string a model is trained and sampled on.
// render_chat() reproduces, byte for byte, what Hugging Face's apply_chat_template renders
// with each format's Jinja template (tests compare against recorded jinja2 renders), so a
// model trained by gopd and served by transformers or vLLM sees the same text.
//
//   qwen3   Qwen3's template without tools: optional leading system turn; <think>…</think>
//           reasoning kept only in assistant turns after the last user query; the generation
//           prompt gets an empty "<think>\n\n</think>\n\n" block when enable_thinking=false.
//   chatml  "<|im_start|>{role}\n{content}<|im_end|>\n" per message, no default system
//           message (Qwen2.5 adds one; plain ChatML does not).
//   llama3  Llama 3 (not 3.1): "<|begin_of_text|>" once, then per message
//           "<|start_header_id|>{role}<|end_header_id|>\n\n{content stripped}<|eot_id|>"; no
//           default system message and no "Cutting Knowledge Date" preamble (both are 3.1).
//   none    base models: the message contents joined by "\n", roles dropped, nothing added
//           for the generation prompt (the same text as data::Record::prompt_text()).
#pragma once

#include <string>
#include <vector>

namespace gopd::tokenizer {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant" (chatml and llama3 accept any role)
  std::string content;
};

// The known formats, in the order error messages list them: qwen3, chatml, llama3, none.
std::vector<std::string> chat_format_names();

// Throws Error (exit 2) listing the known formats unless `format` is one of them;
// `context` prefixes the message (e.g. "--chat-format").
void check_chat_format(const std::string& format, const std::string& context);

// The conversation as the model sees it. `add_generation_prompt` appends the opening of an
// assistant turn; `enable_thinking` only matters for qwen3. A "tool" message in a chat
// format (function calling is out of scope; `none` just joins its content) or a qwen3 role
// other than system/user/assistant (Qwen3's template would silently drop it) → Error (exit 2).
std::string render_chat(const std::vector<ChatMessage>& messages, const std::string& format,
                        bool add_generation_prompt, bool enable_thinking = true);

// The Jinja chat_template (Hugging Face semantics) that renders exactly like render_chat for
// `format`; written into tokenizer_config.json by `gopd tokenizer train`.
std::string chat_template_jinja(const std::string& format);

// Tokens a format writes into the text: special ones (turn markers, skipped by
// decode(skip_special_tokens)) and plain ones (qwen3's <think> and </think>, which Qwen3 also
// keeps as non-special added tokens so that reasoning survives decoding).
std::vector<std::string> chat_format_special_tokens(const std::string& format);
std::vector<std::string> chat_format_plain_tokens(const std::string& format);

// The end-of-turn tokens at which sampling stops: <|im_end|> (qwen3, chatml), <|eot_id|>
// (llama3), none for `none`.
std::vector<std::string> chat_format_stop_tokens(const std::string& format);

// The format a Hugging Face chat_template implements, recognised from its text: Llama 3
// header tokens → llama3; <|im_start|> with <think> handling → qwen3; <|im_start|> alone →
// chatml. Empty when the template is none of these.
std::string detect_chat_format(const std::string& chat_template);

}  // namespace gopd::tokenizer
