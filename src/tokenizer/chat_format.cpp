// Implements the chat formats of chat_format.h. Each renderer is a direct transcription of
// its Jinja template's control flow (the templates below), including the string operations
// the templates use with Python semantics: split/strip('\n') for qwen3, `| trim` (Python's
// str.strip(): Unicode whitespace) for llama3.
#include "gopd/tokenizer/chat_format.h"

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "gopd/core/error.h"

namespace gopd::tokenizer {
namespace {

using core::throw_bad_input;

// The chat_template strings written into tokenizer_config.json. They are our own text (not
// copied from the models' repositories) and render exactly like render_chat under Hugging
// Face's Jinja environment (trim_blocks, lstrip_blocks); every tag strips the whitespace
// around it, so they also render the same without those options.
// tests/unit/chat_format_test.cpp checks that transformers' apply_chat_template, reading them
// from a written tokenizer_config.json, renders what render_chat renders.
// clang-format off
constexpr const char* kQwen3Template = R"jinja({%- if messages[0]['role'] == 'system' %}
  {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- endif %}
{#- The last real user query: later assistant turns keep their reasoning. #}
{%- set state = namespace(last_query=messages|length - 1) %}
{%- for message in messages %}
  {%- if message['role'] == 'user' and not (message['content'].startswith('<tool_response>') and message['content'].endswith('</tool_response>')) %}
    {%- set state.last_query = loop.index0 %}
  {%- endif %}
{%- endfor %}
{%- for message in messages %}
  {%- if message['role'] == 'user' or (message['role'] == 'system' and not loop.first) %}
    {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
  {%- elif message['role'] == 'assistant' %}
    {%- set answer = message['content'] %}
    {%- set reasoning = '' %}
    {%- if '</think>' in answer %}
      {%- set reasoning = answer.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
      {%- set answer = answer.split('</think>')[-1].lstrip('\n') %}
    {%- endif %}
    {%- if loop.index0 > state.last_query and (loop.last or reasoning) %}
      {{- '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + answer.lstrip('\n') }}
    {%- else %}
      {{- '<|im_start|>assistant\n' + answer }}
    {%- endif %}
    {{- '<|im_end|>\n' }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
  {{- '<|im_start|>assistant\n' }}
  {%- if enable_thinking is defined and enable_thinking is false %}
    {{- '<think>\n\n</think>\n\n' }}
  {%- endif %}
{%- endif %})jinja";

constexpr const char* kChatmlTemplate = R"jinja({%- for message in messages %}
  {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
  {{- '<|im_start|>assistant\n' }}
{%- endif %})jinja";

constexpr const char* kLlama3Template = R"jinja({%- for message in messages %}
  {%- if loop.first %}
    {{- '<|begin_of_text|>' }}
  {%- endif %}
  {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
  {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %})jinja";

constexpr const char* kNoneTemplate = R"jinja({%- for message in messages %}
  {%- if not loop.first %}
    {{- '\n' }}
  {%- endif %}
  {{- message['content'] }}
{%- endfor %})jinja";
// clang-format on

std::string known_formats_text() {
  std::string text;
  for (const std::string& name : chat_format_names()) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string_view strip_newlines_left(std::string_view text) {
  while (!text.empty() && text.front() == '\n') text.remove_prefix(1);
  return text;
}

std::string_view strip_newlines_right(std::string_view text) {
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return text;
}

// Python's str.isspace(): bidirectional classes WS, B, S and category Zs.
bool is_python_space(uint32_t code_point) {
  return (code_point >= 0x09 && code_point <= 0x0D) || (code_point >= 0x1C && code_point <= 0x20) ||
         code_point == 0x85 || code_point == 0xA0 || code_point == 0x1680 ||
         (code_point >= 0x2000 && code_point <= 0x200A) || code_point == 0x2028 ||
         code_point == 0x2029 || code_point == 0x202F || code_point == 0x205F ||
         code_point == 0x3000;
}

// Decodes the UTF-8 sequence of `length` bytes at `bytes` (input is valid UTF-8: it was
// validated where it entered gopd; an invalid sequence just never counts as whitespace).
int64_t sequence_length(unsigned char lead);

uint32_t decode_code_point(const unsigned char* bytes, int64_t length) {
  constexpr uint32_t kNotACodePoint = 0xFFFFFFFF;
  // A stray continuation byte, or a lead byte whose sequence is cut short or overlong (found by
  // fuzzing: a run of continuation bytes made the shift below undefined).
  if (length != sequence_length(bytes[0]) || (length == 1 && bytes[0] >= 0x80)) return kNotACodePoint;
  if (length == 1) return bytes[0];
  uint32_t code_point = bytes[0] & (0xFF >> (length + 1));
  for (int64_t i = 1; i < length; ++i) code_point = (code_point << 6) | (bytes[i] & 0x3F);
  return code_point;
}

int64_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// Jinja's `trim` filter = Python's str.strip() with no argument.
std::string_view python_strip(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  int64_t begin = 0;
  int64_t end = static_cast<int64_t>(text.size());
  while (begin < end) {
    const int64_t length = std::min(sequence_length(bytes[begin]), end - begin);
    if (!is_python_space(decode_code_point(bytes + begin, length))) break;
    begin += length;
  }
  while (end > begin) {
    int64_t start = end - 1;
    while (start > begin && (bytes[start] & 0xC0) == 0x80) --start;
    if (!is_python_space(decode_code_point(bytes + start, end - start))) break;
    end = start;
  }
  return text.substr(static_cast<size_t>(begin), static_cast<size_t>(end - begin));
}

void reject_tool_messages(const std::vector<ChatMessage>& messages, const std::string& format) {
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role == "tool") {
      throw_bad_input("chat format " + format + ": message " + std::to_string(i) +
                      " has role \"tool\": tool calls are unsupported by gopd");
    }
  }
}

std::string render_qwen3(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                         bool enable_thinking) {
  // Qwen3's template reads messages[0] unconditionally, so it fails on an empty conversation.
  if (messages.empty()) throw_bad_input("chat format qwen3: the conversation has no messages");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      throw_bad_input("chat format qwen3: message " + std::to_string(i) + " has role \"" + role +
                      "\": expected system, user or assistant");
    }
  }
  std::string text;
  if (messages.front().role == "system") {
    text += "<|im_start|>system\n" + messages.front().content + "<|im_end|>\n";
  }
  // A user message that only wraps a tool response is not a query (the template's rule).
  int64_t last_query = static_cast<int64_t>(messages.size()) - 1;
  for (int64_t i = 0; i < static_cast<int64_t>(messages.size()); ++i) {
    const ChatMessage& message = messages[static_cast<size_t>(i)];
    if (message.role == "user" && !(starts_with(message.content, "<tool_response>") &&
                                    ends_with(message.content, "</tool_response>"))) {
      last_query = i;
    }
  }
  for (int64_t i = 0; i < static_cast<int64_t>(messages.size()); ++i) {
    const ChatMessage& message = messages[static_cast<size_t>(i)];
    const bool last = i + 1 == static_cast<int64_t>(messages.size());
    if (message.role == "user" || (message.role == "system" && i != 0)) {
      text += "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n";
    } else if (message.role == "assistant") {
      std::string_view answer = message.content;
      std::string_view reasoning;
      const size_t first_close = answer.find("</think>");
      if (first_close != std::string_view::npos) {
        // split('</think>')[0] .rstrip('\n') .split('<think>')[-1] .lstrip('\n')
        std::string_view before = strip_newlines_right(answer.substr(0, first_close));
        const size_t last_open = before.rfind("<think>");
        if (last_open != std::string_view::npos) before.remove_prefix(last_open + 7);
        reasoning = strip_newlines_left(before);
        // split('</think>')[-1] .lstrip('\n')
        answer = strip_newlines_left(answer.substr(answer.rfind("</think>") + 8));
      }
      if (i > last_query && (last || !reasoning.empty())) {
        text += "<|im_start|>assistant\n<think>\n";
        text += strip_newlines_right(strip_newlines_left(reasoning));
        text += "\n</think>\n\n";
        text += strip_newlines_left(answer);
      } else {
        text += "<|im_start|>assistant\n";
        text += answer;
      }
      text += "<|im_end|>\n";
    }
  }
  if (add_generation_prompt) {
    text += "<|im_start|>assistant\n";
    if (!enable_thinking) text += "<think>\n\n</think>\n\n";
  }
  return text;
}

std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string text;
  for (const ChatMessage& message : messages) {
    text += "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n";
  }
  if (add_generation_prompt) text += "<|im_start|>assistant\n";
  return text;
}

std::string render_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  // Llama 3's template adds the BOS with the first message, so an empty conversation with a
  // generation prompt has none; we keep that quirk for byte equality.
  std::string text;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0) text += "<|begin_of_text|>";
    text += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n";
    text += python_strip(messages[i].content);
    text += "<|eot_id|>";
  }
  if (add_generation_prompt) text += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return text;
}

std::string render_none(const std::vector<ChatMessage>& messages) {
  std::string text;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i != 0) text += "\n";
    text += messages[i].content;
  }
  return text;
}

}  // namespace

std::vector<std::string> chat_format_names() { return {"qwen3", "chatml", "llama3", "none"}; }

void check_chat_format(const std::string& format, const std::string& context) {
  for (const std::string& name : chat_format_names()) {
    if (name == format) return;
  }
  throw_bad_input(context + ": unknown chat format \"" + format +
                  "\"; known formats: " + known_formats_text());
}

std::string render_chat(const std::vector<ChatMessage>& messages, const std::string& format,
                        bool add_generation_prompt, bool enable_thinking) {
  check_chat_format(format, "render_chat");
  if (format != "none") reject_tool_messages(messages, format);
  if (format == "qwen3") return render_qwen3(messages, add_generation_prompt, enable_thinking);
  if (format == "chatml") return render_chatml(messages, add_generation_prompt);
  if (format == "llama3") return render_llama3(messages, add_generation_prompt);
  return render_none(messages);
}

std::string chat_template_jinja(const std::string& format) {
  check_chat_format(format, "chat_template_jinja");
  if (format == "qwen3") return kQwen3Template;
  if (format == "chatml") return kChatmlTemplate;
  if (format == "llama3") return kLlama3Template;
  return kNoneTemplate;
}

std::vector<std::string> chat_format_special_tokens(const std::string& format) {
  check_chat_format(format, "chat_format_special_tokens");
  if (format == "qwen3" || format == "chatml") return {"<|im_start|>", "<|im_end|>"};
  if (format == "llama3") {
    return {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
  }
  return {};
}

std::vector<std::string> chat_format_plain_tokens(const std::string& format) {
  check_chat_format(format, "chat_format_plain_tokens");
  if (format == "qwen3") return {"<think>", "</think>"};
  return {};
}

std::vector<std::string> chat_format_stop_tokens(const std::string& format) {
  check_chat_format(format, "chat_format_stop_tokens");
  if (format == "qwen3" || format == "chatml") return {"<|im_end|>"};
  if (format == "llama3") return {"<|eot_id|>"};
  return {};
}

std::string detect_chat_format(const std::string& chat_template) {
  if (chat_template.find("<|start_header_id|>") != std::string::npos) return "llama3";
  if (chat_template.find("<|im_start|>") != std::string::npos) {
    // Qwen3 (and our own qwen3 template) parse "</think>" out of assistant turns; QwQ-style
    // templates that only mention <think> in a generation prompt are not Qwen3.
    if (chat_template.find("</think>") != std::string::npos &&
        chat_template.find("enable_thinking") != std::string::npos) {
      return "qwen3";
    }
    return "chatml";
  }
  return "";
}

}  // namespace gopd::tokenizer
