// Fuzz target: the bodies `gopd serve` accepts (POST /v1/completions, POST /tokenize). A body
// is accepted or refused with RequestError(400 or 413, the field); nothing else may escape,
// and an accepted request stays inside the limits it was checked against.
#include "fuzz_util.h"
#include "gopd/serve/completions.h"

namespace serve = gopd::serve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  serve::RequestLimits limits;
  limits.vocab_size = 1000;
  try {
    const auto request = serve::parse_completion_request(body, limits);
    if (request.prompts.empty() || static_cast<int64_t>(request.prompts.size()) > limits.max_prompts ||
        request.n < 1 || request.n > limits.max_n || request.max_tokens < -1) {
      gopd::fuzz::fail("an out-of-limits request was accepted: " + body);
    }
    for (const auto& prompt : request.prompts) {
      for (const int64_t id : prompt.ids) {
        if (id < 0 || id >= limits.vocab_size) gopd::fuzz::fail("an out-of-vocabulary id was accepted");
      }
    }
    if (request.logprobs && (*request.logprobs < 0 || *request.logprobs > limits.max_logprobs)) {
      gopd::fuzz::fail("logprobs outside [0, max_logprobs] was accepted");
    }
    if (request.prompt_logprobs &&
        (*request.prompt_logprobs < 0 || *request.prompt_logprobs > limits.max_logprobs)) {
      gopd::fuzz::fail("prompt_logprobs outside [0, max_logprobs] was accepted");
    }
  } catch (const serve::RequestError& error) {
    if (error.status() != 400 && error.status() != 413) {
      gopd::fuzz::fail("status " + std::to_string(error.status()) + ": " + error.what());
    }
    (void)serve::dump_json(serve::error_body(error.status(), error.what(), error.param()));
  } catch (const std::exception& error) {
    gopd::fuzz::fail(std::string("an exception other than RequestError escaped: ") + error.what());
  }
  try {
    (void)serve::parse_tokenize_request(body);
  } catch (const serve::RequestError& error) {
    if (error.status() != 400) gopd::fuzz::fail("tokenize status " + std::to_string(error.status()));
  } catch (const std::exception& error) {
    gopd::fuzz::fail(std::string("tokenize: an exception other than RequestError escaped: ") +
                     error.what());
  }
  return 0;
}
