// The client side of the completions protocol: what a job asks a served teacher or reference
// (`gopd serve`, vLLM). Scoring is one request per group of sequences, {"prompt": [[ids…]…],
// "max_tokens": 0, "echo": true, "prompt_logprobs": k}, the request vLLM accepts for scoring
// (max_tokens 0 only with echo), answered with choices[i].prompt_logprobs. Connection errors and
// 429/5xx are retried with backoff until the endpoint's timeout (then exit 1, and every later
// call of the client fails at once); any other refusal fails at once (exit 2), naming the
// endpoint and what to do.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace gopd::serve {

struct Endpoint {
  std::string label;        // config key for messages, e.g. "teachers.math"
  std::string url;          // http(s)://host:port (a trailing /v1 or / is dropped)
  std::string model;        // "" = the only model the server lists
  double timeout_s = 600;
  std::string api_key;      // bearer token, "" = none
  int64_t rows_per_request = 8;   // sequences per completions request
  int64_t concurrency = 8;        // requests in flight at once (pipelined ones included)
  bool pipeline = true;           // score rows as the rollout finishes them (false: afterwards)
};

// The log-probs of one position: the actual token's, and the server's top k (best first).
struct PositionLogprobs {
  double actual = 0.0;
  std::vector<std::pair<int64_t, double>> top;
};

struct ServedModel {
  std::string id;
  int64_t max_model_len = 0;
  int64_t vocab_size = 0;  // 0 = not reported (vLLM does not; gopd serve does)
};

class CompletionsClient {
 public:
  explicit CompletionsClient(Endpoint endpoint);

  // GET /v1/models: the model this endpoint scores with (waits for the server up to the
  // timeout). Fails when endpoint.model is not served, or when several are and none is named.
  ServedModel served_model();
  // POST /tokenize.
  std::vector<int64_t> tokenize(const std::string& text, bool add_special_tokens);
  // Per sequence, per position j ≥ 1: log π(x_j | x_<j) and the top k (k ≥ 0); entry 0 is empty.
  std::vector<std::vector<PositionLogprobs>> prompt_logprobs(
      const std::vector<std::vector<int64_t>>& sequences, int64_t k);

  const Endpoint& endpoint() const { return endpoint_; }

 private:
  std::string call(const std::string& method, const std::string& path, const std::string& body);
  std::vector<std::vector<PositionLogprobs>> score_group(
      const std::vector<std::vector<int64_t>>& sequences, int64_t k);

  class Slot;
  Endpoint endpoint_;
  std::string base_;    // scheme://host:port
  std::string prefix_;  // a path prefix before /v1 (behind a proxy), "" usually
  std::mutex slots_mutex_;
  std::condition_variable slots_free_;
  int64_t in_flight_ = 0;
  // Once a call has waited out the timeout, later calls fail at once (a failed step then ends
  // without waiting the timeout again for each request still queued).
  std::atomic<bool> unreachable_{false};
  std::string unreachable_message_;
};

}  // namespace gopd::serve
