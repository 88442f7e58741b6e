// A served teacher or reference as a Scorer: see remote_scorer.h.
#include "gopd/scoring/remote_scorer.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <future>

#include "gopd/core/error.h"

namespace gopd::scoring {
namespace {

// Row b's prompt (without its left padding) + response (without its right padding), and the
// prompt's length.
std::vector<std::vector<int64_t>> unpadded(const TrainingSequences& sequences, int64_t begin,
                                           int64_t end, std::vector<int64_t>& prompt_lengths,
                                           std::vector<int64_t>& response_lengths) {
  const torch::Tensor ids = sequences.input_ids.slice(0, begin, end).to(torch::kCPU).contiguous();
  const torch::Tensor attention =
      sequences.attention_mask.slice(0, begin, end).to(torch::kCPU).to(torch::kLong).contiguous();
  const torch::Tensor mask = sequences.mask.slice(0, begin, end).to(torch::kCPU).contiguous();
  const int64_t P = sequences.prompt_length, T = sequences.targets.size(1);
  std::vector<std::vector<int64_t>> out;
  for (int64_t b = 0; b < end - begin; ++b) {
    std::vector<int64_t> sequence;
    const int64_t* row = ids[b].data_ptr<int64_t>();
    const int64_t* keep = attention[b].data_ptr<int64_t>();
    for (int64_t p = 0; p < P; ++p) {
      if (keep[p] != 0) sequence.push_back(row[p]);
    }
    prompt_lengths.push_back(int64_t(sequence.size()));
    const float* response = mask[b].data_ptr<float>();
    int64_t length = 0;
    while (length < T && response[length] > 0) ++length;
    for (int64_t t = 0; t < length; ++t) sequence.push_back(row[P + t]);
    response_lengths.push_back(length);
    out.push_back(std::move(sequence));
  }
  return out;
}

}  // namespace

const char* const kTokenizerProbe =
    "Probe 1: 12+345=357, x_{t}^2 \xe2\x88\x91 caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd!\n\n  def f(a):\n\treturn a  # end";

RemoteScorer::RemoteScorer(serve::Endpoint endpoint, const tokenizer::Tokenizer& student)
    : client_(std::make_shared<serve::CompletionsClient>(std::move(endpoint))),
      vocab_(student.vocab_size()) {
  const serve::ServedModel model = client_->served_model();
  const std::string& label = client_->endpoint().label;
  const std::string& url = client_->endpoint().url;
  if (model.vocab_size > 0 && model.vocab_size != student.vocab_size()) {
    core::throw_bad_input(label + " (" + url + "): the served model '" + model.id + "' has a " +
                          std::to_string(model.vocab_size) + "-token tokenizer but the student's has " +
                          std::to_string(student.vocab_size()) +
                          "; student, teachers and reference must share a tokenizer");
  }
  const std::vector<int64_t> ours = student.encode(kTokenizerProbe, false);
  const std::vector<int64_t> theirs = client_->tokenize(kTokenizerProbe, false);
  if (ours != theirs) {
    size_t at = 0;
    while (at < ours.size() && at < theirs.size() && ours[at] == theirs[at]) ++at;
    core::throw_bad_input(
        label + " (" + url + "): the served model '" + model.id +
        "' encodes a probe text differently from the student's tokenizer (first difference at "
        "token " + std::to_string(at) + " of " + std::to_string(ours.size()) +
        "); student, teachers and reference must share a tokenizer");
  }
  spdlog::info("{}: served model '{}' at {} (tokenizer checked)", label, model.id, url);
}

kernels::LogitHead RemoteScorer::target_head(const TrainingSequences&, int64_t, int64_t) {
  core::throw_bad_input(label() + ": a served model gives log-probs, not logits; gopd.objective "
                                  "full_vocab needs its teachers and reference in this process");
}

void RemoteScorer::begin_prefetch() {
  prefetched_.clear();
  pending_.clear();
  prefetched_rows_ = 0;
}

void RemoteScorer::prefetch(int64_t row, std::vector<int64_t> sequence) {
  pending_.emplace_back(row, std::move(sequence));
  if (int64_t(pending_.size()) >= client_->endpoint().rows_per_request) flush_prefetch();
}

void RemoteScorer::flush_prefetch() {
  if (pending_.empty()) return;
  auto group = std::make_shared<std::vector<std::vector<int64_t>>>();
  for (const auto& [row, sequence] : pending_) group->push_back(sequence);
  auto client = client_;
  auto answer = std::make_shared<std::shared_future<std::vector<std::vector<serve::PositionLogprobs>>>>(
      std::async(std::launch::async, [client, group] { return client->prompt_logprobs(*group, 0); })
          .share());
  for (size_t i = 0; i < pending_.size(); ++i) {
    prefetched_[pending_[i].first] = {std::move(pending_[i].second), answer, i};
  }
  pending_.clear();
}

std::function<torch::Tensor()> RemoteScorer::start_token_logprobs(
    const TrainingSequences& sequences, int64_t begin, int64_t end, double temperature,
    kernels::Impl) {
  if (temperature != 1.0) {
    core::throw_bad_input(label() + ": a served model scores at temperature 1, not " +
                          std::to_string(temperature));
  }
  flush_prefetch();
  std::vector<int64_t> prompt_lengths, response_lengths;
  std::vector<std::vector<int64_t>> rows =
      unpadded(sequences, begin, end, prompt_lengths, response_lengths);
  // Each row's scores: from its prefetched request when its tokens match, else from a new one.
  using Answer = std::shared_future<std::vector<std::vector<serve::PositionLogprobs>>>;
  std::vector<std::pair<std::shared_ptr<Answer>, size_t>> source(rows.size());
  auto missing = std::make_shared<std::vector<std::vector<int64_t>>>();
  std::vector<size_t> missing_rows;
  for (size_t b = 0; b < rows.size(); ++b) {
    const auto found = prefetched_.find(begin + int64_t(b));
    if (found != prefetched_.end() && found->second.sequence == rows[b]) {
      source[b] = {found->second.answer, found->second.index};
      ++prefetched_rows_;
    } else {
      missing_rows.push_back(b);
      missing->push_back(rows[b]);
    }
  }
  if (!missing->empty()) {
    auto client = client_;
    auto answer = std::make_shared<Answer>(
        std::async(std::launch::async, [client, missing] { return client->prompt_logprobs(*missing, 0); })
            .share());
    for (size_t i = 0; i < missing_rows.size(); ++i) source[missing_rows[i]] = {answer, i};
  }
  const int64_t T = sequences.targets.size(1);
  const torch::Device device = sequences.targets.device();
  return [source, prompt_lengths, response_lengths, T, device] {
    torch::Tensor out = torch::zeros({int64_t(source.size()), T}, torch::kFloat);  // (rows, T)
    float* data = out.data_ptr<float>();
    for (size_t b = 0; b < source.size(); ++b) {
      const std::vector<serve::PositionLogprobs>& scores = source[b].first->get()[source[b].second];
      for (int64_t t = 0; t < response_lengths[b]; ++t) {
        data[int64_t(b) * T + t] = float(scores[size_t(prompt_lengths[b] + t)].actual);
      }
    }
    return out.to(device);
  };
}

torch::Tensor RemoteScorer::response_logprobs(const TrainingSequences& sequences,
                                              double temperature, int64_t, kernels::Impl impl) {
  return start_token_logprobs(sequences, 0, sequences.targets.size(0), temperature, impl)();
}

std::vector<std::vector<double>> RemoteScorer::prompt_logprobs(
    const std::vector<std::vector<int64_t>>& prompts, int64_t, int64_t) {
  const auto scores = client_->prompt_logprobs(prompts, 0);
  std::vector<std::vector<double>> out;
  for (const auto& positions : scores) {
    std::vector<double> values(positions.size(), 0.0);
    for (size_t j = 1; j < positions.size(); ++j) values[j] = positions[j].actual;
    out.push_back(std::move(values));
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> RemoteScorer::top_k(const TrainingSequences& sequences,
                                                            int64_t begin, int64_t end, int64_t k) {
  std::vector<int64_t> prompt_lengths, response_lengths;
  const auto rows = unpadded(sequences, begin, end, prompt_lengths, response_lengths);
  const auto scores = client_->prompt_logprobs(rows, k);
  const int64_t T = sequences.targets.size(1), B = end - begin;
  // Padding positions (masked out of the loss) get distinct ids and half the mass spread over
  // them, finite values the top-k kernel accepts.
  torch::Tensor ids = torch::arange(k, torch::kLong).expand({B, T, k}).contiguous();  // (rows, T, k)
  torch::Tensor logprobs = torch::full({B, T, k}, std::log(0.5 / double(k)), torch::kFloat);
  int64_t* id_data = ids.data_ptr<int64_t>();
  float* lp_data = logprobs.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < response_lengths[size_t(b)]; ++t) {
      const serve::PositionLogprobs& position =
          scores[size_t(b)][size_t(prompt_lengths[size_t(b)] + t)];
      if (int64_t(position.top.size()) < k) {
        core::throw_runtime_failure(label() + ": the server returned " +
                                    std::to_string(position.top.size()) + " of the " +
                                    std::to_string(k) + " prompt log-probs asked for");
      }
      for (int64_t j = 0; j < k; ++j) {
        const int64_t id = position.top[size_t(j)].first;
        if (id < 0 || id >= vocab_) {
          core::throw_runtime_failure(
              label() + ": the server ranked token id " + std::to_string(id) +
              " among its top k, outside the student's tokenizer (" + std::to_string(vocab_) +
              " ids); a served teacher must rank the shared tokenizer's ids only");
        }
        id_data[(b * T + t) * k + j] = id;
        lp_data[(b * T + t) * k + j] = float(position.top[size_t(j)].second);
      }
    }
  }
  const torch::Device device = sequences.targets.device();
  return {ids.to(device), logprobs.to(device)};
}

}  // namespace gopd::scoring
