// The request side of `gopd serve`'s OpenAI/vLLM completions API, without a model: parsing and
// checking a POST /v1/completions body into a CompletionRequest, and the error every bad request
// gets (HTTP status, the offending field, a message). Field names, defaults and meanings are
// vLLM's (vllm/entrypoints/openai/protocol.py, CompletionRequest); extensions gopd does not
// implement are refused by name rather than ignored, so a client never gets silently different
// sampling from what it asked for.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gopd::serve {

// A request the server refuses: 400 (bad field), 404 (unknown model or path), 503 (overloaded).
class RequestError : public std::runtime_error {
 public:
  RequestError(int status, std::string param, const std::string& message)
      : std::runtime_error(message), status_(status), param_(std::move(param)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }  // "" = not about one field

 private:
  int status_;
  std::string param_;
};

// The body of an error response, OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
nlohmann::json error_body(int status, const std::string& message, const std::string& param = "");

// One prompt as the client sent it: text to encode, or token ids.
struct PromptInput {
  std::string text;
  std::vector<int64_t> ids;
  bool is_text = false;
};

struct CompletionRequest {
  std::string model;                    // "" = the served model
  std::vector<PromptInput> prompts;     // a string, a list of ids, or a list of either
  int64_t max_tokens = 16;              // 0 = no generation (scoring only)
  double temperature = 1.0;             // 0 = greedy
  double top_p = 1.0;
  int64_t top_k = 0;                    // vLLM's extension; 0 or -1 = off
  double min_p = 0.0;                   // vLLM's extension
  std::optional<uint64_t> seed;
  int64_t n = 1;
  bool echo = false;
  std::optional<int64_t> logprobs;         // top-k of each returned token (0 = the token only)
  std::optional<int64_t> prompt_logprobs;  // vLLM's: top-k of each prompt token
  std::vector<std::string> stop;
  std::vector<int64_t> stop_token_ids;     // vLLM's extension
  bool ignore_eos = false;                 // vLLM's extension
  bool skip_special_tokens = true;         // vLLM's extension (the returned text)
  bool add_special_tokens = true;          // vLLM's extension (encoding text prompts)
  bool return_tokens_as_token_ids = false; // vLLM's: tokens reported as "token_id:N"
};

// Limits a request is checked against (the server's flags).
struct RequestLimits {
  int64_t max_logprobs = 20;   // vLLM's --max-logprobs default
  int64_t max_n = 64;
  int64_t max_prompts = 1024;  // prompts in one request
  int64_t vocab_size = 0;      // token ids must be below it
};

// Parses and checks a completions body; RequestError(400, field, …) on the first problem. Text
// prompts stay text (the caller encodes them); ids are range-checked.
CompletionRequest parse_completion_request(const std::string& body, const RequestLimits& limits);

// POST /tokenize (vLLM): {"prompt": text, "add_special_tokens": bool}.
struct TokenizeRequest {
  std::string model;
  std::string prompt;
  bool add_special_tokens = true;
};
TokenizeRequest parse_tokenize_request(const std::string& body);

// JSON text with invalid UTF-8 replaced (token pieces can be partial characters).
std::string dump_json(const nlohmann::json& value);

}  // namespace gopd::serve
