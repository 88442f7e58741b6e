// Parsing and checking of completions requests: see completions.h.
#include "gopd/serve/completions.h"

#include <cmath>
#include <functional>
#include <limits>

namespace gopd::serve {
namespace {

using nlohmann::json;

const char* error_type(int status) {
  switch (status) {
    case 400: return "BadRequestError";
    case 404: return "NotFoundError";
    case 413: return "RequestEntityTooLarge";
    case 503: return "ServiceUnavailableError";
    default: return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw RequestError(400, param, param.empty() ? message : param + ": " + message);
}

std::string type_name(const json& value) { return value.type_name(); }

// An integer field: JSON integers, or numbers with an integral value (pydantic's lax mode), in
// [low, high].
int64_t integer(const json& value, const std::string& field, int64_t low, int64_t high) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > uint64_t(std::numeric_limits<int64_t>::max()) || int64_t(v) > high) {
      bad(field, "must be at most " + std::to_string(high));
    }
    if (int64_t(v) < low) bad(field, "must be at least " + std::to_string(low));
    return int64_t(v);
  }
  int64_t v = 0;
  if (value.is_number_integer()) {
    v = value.get<int64_t>();
  } else if (value.is_number_float()) {
    const double d = value.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) bad(field, "must be an integer");
    // 2^63 and −2^63 − 1 are the first doubles outside int64_t.
    if (d >= 9223372036854775808.0 || d > double(high)) {
      bad(field, "must be at most " + std::to_string(high));
    }
    if (d < -9223372036854775808.0 || d < double(low)) {
      bad(field, "must be at least " + std::to_string(low));
    }
    v = int64_t(d);
  } else {
    bad(field, "must be an integer, got " + type_name(value));
  }
  if (v < low) bad(field, "must be at least " + std::to_string(low));
  if (v > high) bad(field, "must be at most " + std::to_string(high));
  return v;
}

double number(const json& value, const std::string& field, double low, double high) {
  if (!value.is_number()) bad(field, "must be a number, got " + type_name(value));
  const double v = value.get<double>();
  if (!std::isfinite(v) || v < low || v > high) {
    bad(field, "must be in [" + json(low).dump() + ", " + json(high).dump() + "]");
  }
  return v;
}

bool boolean(const json& value, const std::string& field) {
  if (!value.is_boolean()) bad(field, "must be true or false, got " + type_name(value));
  return value.get<bool>();
}

std::string string(const json& value, const std::string& field) {
  if (!value.is_string()) bad(field, "must be a string, got " + type_name(value));
  return value.get<std::string>();
}

std::vector<int64_t> token_ids(const json& value, const std::string& field, int64_t vocab_size) {
  std::vector<int64_t> ids;
  ids.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (!value[i].is_number_integer()) {
      bad(at, "token ids must be integers, got " + type_name(value[i]));
    }
    ids.push_back(integer(value[i], at, 0,
                          vocab_size > 0 ? vocab_size - 1 : std::numeric_limits<int64_t>::max()));
  }
  return ids;
}

std::vector<PromptInput> prompts(const json& value, const RequestLimits& limits) {
  std::vector<PromptInput> out;
  const auto text = [](const json& item) {
    PromptInput prompt;
    prompt.text = item.get<std::string>();
    prompt.is_text = true;
    return prompt;
  };
  if (value.is_string()) return {text(value)};
  if (!value.is_array()) {
    bad("prompt", "must be a string, a list of token ids, or a list of strings or of token-id "
                  "lists; got " + type_name(value));
  }
  if (value.empty()) bad("prompt", "is empty");
  if (value[0].is_number()) {
    PromptInput prompt;
    prompt.ids = token_ids(value, "prompt", limits.vocab_size);
    return {prompt};
  }
  if (int64_t(value.size()) > limits.max_prompts) {
    bad("prompt", "at most " + std::to_string(limits.max_prompts) + " prompts per request");
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string at = "prompt[" + std::to_string(i) + "]";
    const json& item = value[i];
    if (item.is_string()) {
      out.push_back(text(item));
    } else if (item.is_array()) {
      if (item.empty()) bad(at, "is empty");
      PromptInput prompt;
      prompt.ids = token_ids(item, at, limits.vocab_size);
      out.push_back(std::move(prompt));
    } else {
      bad(at, "must be a string or a list of token ids, got " + type_name(item));
    }
  }
  return out;
}

// Fields gopd does not implement: accepted only at the value that means "off".
void refuse_unsupported(const json& body) {
  const auto off = [&body](const char* key, const std::function<bool(const json&)>& is_off) {
    const auto it = body.find(key);
    if (it != body.end() && !it->is_null() && !is_off(*it)) {
      bad(key, "is not supported by gopd serve");
    }
  };
  const auto is_false = [](const json& v) { return v.is_boolean() && !v.get<bool>(); };
  const auto is_zero = [](const json& v) { return v.is_number() && v.get<double>() == 0.0; };
  const auto is_one = [](const json& v) { return v.is_number() && v.get<double>() == 1.0; };
  const auto is_empty = [](const json& v) { return (v.is_object() || v.is_array()) && v.empty(); };
  off("stream", is_false);
  off("suffix", [](const json& v) { return v.is_string() && v.get<std::string>().empty(); });
  off("logit_bias", is_empty);
  off("presence_penalty", is_zero);
  off("frequency_penalty", is_zero);
  off("repetition_penalty", is_one);
  off("use_beam_search", is_false);
  off("length_penalty", is_one);
  off("guided_json", [](const json&) { return false; });
  off("guided_regex", [](const json&) { return false; });
  off("guided_choice", [](const json&) { return false; });
  off("guided_grammar", [](const json&) { return false; });
  off("allowed_token_ids", [](const json&) { return false; });
  off("bad_words", is_empty);
  off("min_tokens", is_zero);
  off("truncate_prompt_tokens", [](const json&) { return false; });
}

json parse_object(const std::string& body) {
  json value;
  try {
    value = json::parse(body);
  } catch (const json::exception& error) {
    bad("", std::string("the request body is not valid JSON: ") + error.what());
  }
  if (!value.is_object()) bad("", "the request body must be a JSON object, got " + type_name(value));
  return value;
}

}  // namespace

json error_body(int status, const std::string& message, const std::string& param) {
  return {{"error",
           {{"message", message},
            {"type", error_type(status)},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", status}}}};
}

CompletionRequest parse_completion_request(const std::string& body, const RequestLimits& limits) {
  const json request = parse_object(body);
  refuse_unsupported(request);
  CompletionRequest out;
  const auto field = [&request](const char* key) -> const json* {
    const auto it = request.find(key);
    return it == request.end() || it->is_null() ? nullptr : &*it;
  };
  constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
  if (const json* v = field("model")) out.model = string(*v, "model");
  const json* prompt = field("prompt");
  if (prompt == nullptr) bad("prompt", "is required");
  out.prompts = prompts(*prompt, limits);
  if (request.contains("max_tokens") && request["max_tokens"].is_null()) {
    out.max_tokens = -1;  // vLLM: as many as the context leaves
  } else if (const json* v = field("max_tokens")) {
    out.max_tokens = integer(*v, "max_tokens", 0, kMaxInt);
  }
  if (const json* v = field("temperature")) out.temperature = number(*v, "temperature", 0, 1e6);
  if (const json* v = field("top_p")) {
    out.top_p = number(*v, "top_p", 0, 1);
    if (out.top_p <= 0) bad("top_p", "must be in (0, 1]");
  }
  if (const json* v = field("top_k")) {
    out.top_k = integer(*v, "top_k", -1, kMaxInt);
    if (out.top_k < 0) out.top_k = 0;
  }
  if (const json* v = field("min_p")) out.min_p = number(*v, "min_p", 0, 1);
  if (const json* v = field("seed")) {
    out.seed = uint64_t(integer(*v, "seed", std::numeric_limits<int64_t>::min(), kMaxInt));
  }
  if (const json* v = field("n")) out.n = integer(*v, "n", 1, limits.max_n);
  if (const json* v = field("best_of")) {
    if (integer(*v, "best_of", 1, limits.max_n) != out.n) {
      bad("best_of", "must equal n (gopd serve returns every sample)");
    }
  }
  if (const json* v = field("echo")) out.echo = boolean(*v, "echo");
  if (const json* v = field("logprobs")) {
    if (v->is_boolean()) bad("logprobs", "must be an integer (the top-k per token), got boolean");
    out.logprobs = integer(*v, "logprobs", 0, limits.max_logprobs);
  }
  if (const json* v = field("prompt_logprobs")) {
    if (v->is_boolean()) bad("prompt_logprobs", "must be an integer, got boolean");
    out.prompt_logprobs = integer(*v, "prompt_logprobs", 0, limits.max_logprobs);
  }
  if (const json* v = field("stop")) {
    if (v->is_string()) {
      out.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      for (size_t i = 0; i < v->size(); ++i) out.stop.push_back(string((*v)[i], "stop[" + std::to_string(i) + "]"));
    } else {
      bad("stop", "must be a string or a list of strings, got " + type_name(*v));
    }
    for (const std::string& stop : out.stop) {
      if (stop.empty()) bad("stop", "stop strings must not be empty");
    }
  }
  if (const json* v = field("stop_token_ids")) {
    if (!v->is_array()) bad("stop_token_ids", "must be a list of token ids");
    out.stop_token_ids = token_ids(*v, "stop_token_ids", limits.vocab_size);
  }
  if (const json* v = field("ignore_eos")) out.ignore_eos = boolean(*v, "ignore_eos");
  if (const json* v = field("skip_special_tokens")) {
    out.skip_special_tokens = boolean(*v, "skip_special_tokens");
  }
  if (const json* v = field("add_special_tokens")) {
    out.add_special_tokens = boolean(*v, "add_special_tokens");
  }
  if (const json* v = field("return_tokens_as_token_ids")) {
    out.return_tokens_as_token_ids = boolean(*v, "return_tokens_as_token_ids");
  }
  if (int64_t(out.prompts.size()) * out.n > limits.max_prompts) {
    bad("n", "prompts × n must be at most " + std::to_string(limits.max_prompts));
  }
  return out;
}

TokenizeRequest parse_tokenize_request(const std::string& body) {
  const json request = parse_object(body);
  TokenizeRequest out;
  const auto it = request.find("prompt");
  if (it == request.end() || it->is_null()) bad("prompt", "is required");
  out.prompt = string(*it, "prompt");
  if (const auto m = request.find("model"); m != request.end() && !m->is_null()) {
    out.model = string(*m, "model");
  }
  if (const auto a = request.find("add_special_tokens"); a != request.end() && !a->is_null()) {
    out.add_special_tokens = boolean(*a, "add_special_tokens");
  }
  return out;
}

std::string dump_json(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace gopd::serve
