// A teacher or reference served by another process (`gopd serve`, vLLM) as a Scorer: sequences
// go out as token ids, log-probs come back from prompt_logprobs (temperature 1, the server's raw
// logits). Before the first use the server must prove it shares the student's tokenizer: the
// vocabulary size when it reports one, and a probe text encoded to the same ids.
#pragma once

#include <future>
#include <map>
#include <memory>
#include <string>

#include "gopd/scoring/scorer.h"
#include "gopd/serve/client.h"

namespace gopd::scoring {

class RemoteScorer : public Scorer {
 public:
  // Waits for the server (up to the endpoint's timeout) and checks its tokenizer; exit 2 naming
  // endpoint.label when it differs from the student's.
  RemoteScorer(serve::Endpoint endpoint, const tokenizer::Tokenizer& student);

  kernels::LogitHead target_head(const TrainingSequences& sequences, int64_t begin,
                                 int64_t end) override;
  torch::Tensor response_logprobs(const TrainingSequences& sequences, double temperature,
                                  int64_t micro_batch, kernels::Impl impl) override;
  std::vector<std::vector<double>> prompt_logprobs(const std::vector<std::vector<int64_t>>& prompts,
                                                   int64_t pad, int64_t micro_batch) override;
  std::function<torch::Tensor()> start_token_logprobs(const TrainingSequences& sequences,
                                                      int64_t begin, int64_t end,
                                                      double temperature,
                                                      kernels::Impl impl) override;
  bool remote() const override { return true; }

  // The server's k most likely tokens at every response position of rows [begin, end):
  // ids (rows, T, k) int64 and log-probs (rows, T, k) fp32, best first (padding: ids 0…k−1).
  std::pair<torch::Tensor, torch::Tensor> top_k(const TrainingSequences& sequences, int64_t begin,
                                                int64_t end, int64_t k);

  const std::string& label() const { return client_->endpoint().label; }

  // Pipelining with the rollout (sampled-token objective): rows handed over while the rollout
  // still decodes are scored in groups of the endpoint's rows_per_request at once; a later
  // start_token_logprobs takes a row's scores from there when its tokens are the same
  // (otherwise it asks again). begin_prefetch forgets the previous batch's rows.
  void begin_prefetch();
  void prefetch(int64_t row, std::vector<int64_t> sequence);
  void flush_prefetch();
  int64_t prefetched_rows() const { return prefetched_rows_; }
  bool pipelined() const { return client_->endpoint().pipeline; }

 private:
  struct Prefetched {
    std::vector<int64_t> sequence;
    std::shared_ptr<std::shared_future<std::vector<std::vector<serve::PositionLogprobs>>>> answer;
    size_t index = 0;  // the row's place in its request
  };
  std::shared_ptr<serve::CompletionsClient> client_;
  int64_t vocab_ = 0;  // the student's tokenizer size: served top-k ids must be below it
  std::map<int64_t, Prefetched> prefetched_;  // row → its request
  std::vector<std::pair<int64_t, std::vector<int64_t>>> pending_;  // not yet sent
  int64_t prefetched_rows_ = 0;  // rows whose prefetched scores were used, this batch
};

// The text whose encoding must agree between the student's tokenizer and a served model's.
extern const char* const kTokenizerProbe;

}  // namespace gopd::scoring
