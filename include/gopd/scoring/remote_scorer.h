// A teacher or reference served by another process (`gopd serve`, vLLM) as a Scorer: sequences
// go out as token ids, log-probs come back from prompt_logprobs (temperature 1, the server's raw
// logits). Before the first use the server must prove it shares the student's tokenizer: the
// vocabulary size when it reports one, and a probe text encoded to the same ids.
#pragma once

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

 private:
  std::shared_ptr<serve::CompletionsClient> client_;
};

// The text whose encoding must agree between the student's tokenizer and a served model's.
extern const char* const kTokenizerProbe;

}  // namespace gopd::scoring
