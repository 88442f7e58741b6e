// Fuzz target: chat rendering of fuzzed conversations in every chat format, and chat-format
// detection on fuzzed chat_template text. Input: byte 0 picks the format and the flags, then
// messages separated by NUL, each "<role byte><content>": a role byte below 0xF0 picks system,
// user, assistant or tool; 0xF0 + n makes the first n bytes of the content the role (a custom
// role, which chatml and llama3 accept and qwen3 refuses).
#include "fuzz_util.h"
#include "gopd/tokenizer/chat_format.h"

namespace tok = gopd::tokenizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto formats = tok::chat_format_names();
  const std::string& format = formats[data[0] % formats.size()];
  const bool add_generation_prompt = (data[0] & 0x10) != 0;
  const bool enable_thinking = (data[0] & 0x20) != 0;
  const auto parts = gopd::fuzz::split_input(data + 1, size - 1, 1);

  static const char* const kRoles[] = {"system", "user", "assistant", "tool"};
  std::vector<tok::ChatMessage> messages;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (part.empty()) continue;
    const auto role_byte = static_cast<uint8_t>(part[0]);
    tok::ChatMessage message;
    message.content = part.substr(1);
    if (role_byte < 0xF0) {
      message.role = kRoles[role_byte % 4];
    } else {
      message.role = message.content.substr(0, role_byte - 0xF0);
    }
    messages.push_back(std::move(message));
  }
  std::string rendered;
  if (gopd::fuzz::accepts("chat format " + format, [&] {
        rendered = tok::render_chat(messages, format, add_generation_prompt, enable_thinking);
      })) {
    for (const auto& message : messages) {
      // ChatML copies every message's content verbatim (llama3 strips it, qwen3 drops old
      // reasoning, so only chatml has an exact containment property).
      if (format == "chatml" && rendered.find(message.content) == std::string::npos) {
        gopd::fuzz::fail("chatml dropped a message's content");
      }
    }
  }
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)tok::detect_chat_format(text);
  gopd::fuzz::accepts("--chat-format", [&] { tok::check_chat_format(parts[0], "--chat-format"); });
  return 0;
}
