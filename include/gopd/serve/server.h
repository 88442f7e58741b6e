// `gopd serve`: a model behind the subset of the OpenAI/vLLM HTTP API that distillation needs
// (POST /v1/completions with logprobs, prompt_logprobs and echo; POST /tokenize; GET /v1/models;
// GET /health). HTTP threads parse and check requests and queue them (a full queue answers 503);
// one engine thread owns the model and runs queued requests that sample alike as one batch of
// the rollout engine, then one scoring pass for every row that asked for log-probs.
#pragma once

#include <cstdint>
#include <string>

namespace gopd::serve {

struct ServeOptions {
  std::string model;                  // model directory
  std::string served_name;            // the "model" clients name; "" = the directory's name
  std::string host = "127.0.0.1";
  int port = 8000;                    // 0 = any free port (printed on stderr)
  std::string device = "cpu";
  std::string dtype = "auto";
  int64_t max_batch_tokens = 16384;   // prompt + new tokens of the rows of one engine batch
  int64_t max_queue = 64;             // requests waiting or running; more answer 503
  int64_t max_logprobs = 20;          // vLLM's --max-logprobs
  int64_t http_threads = 0;           // 0 = max_queue + 4
  int64_t max_body_bytes = 64 << 20;  // larger bodies answer 413
};

// Loads the model and serves until SIGINT/SIGTERM. Bad options or model files: core::Error.
void serve(const ServeOptions& options);

}  // namespace gopd::serve
