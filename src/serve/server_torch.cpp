// `gopd serve`: see server.h. Response shapes follow vLLM's OpenAI server field for field
// (vllm/entrypoints/openai/protocol.py: CompletionResponse, CompletionResponseChoice,
// CompletionLogProbs, UsageInfo, ModelCard): every field present, null where unset; prompt
// log-prob entries keyed by token id with {logprob, rank, decoded_token}, rank 1-based counting
// ties, -inf reported as -9999.0; log-probs of the raw logits (temperature 1), as vLLM's default
// logprobs_mode.
#include "gopd/serve/server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "gopd/core/error.h"
#include "gopd/core/runtime.h"
#include "gopd/model/model_io.h"
#include "gopd/rollout/rollout_engine.h"
#include "gopd/scoring/scorer.h"
#include "gopd/serve/completions.h"
#include "gopd/tokenizer/tokenizer.h"

namespace gopd::serve {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Per-position scores of one sequence: entry j (j ≥ 1) is about token j given the tokens before.
struct PositionScores {
  std::vector<double> logprob;                           // of the actual token
  std::vector<int64_t> rank;                             // 1-based, ties count
  std::vector<std::vector<std::pair<int64_t, double>>> top;  // the k most likely, best first
};

// A request in the queue, encoded; the engine fills `response`.
struct Pending {
  CompletionRequest request;
  std::vector<std::vector<int64_t>> prompts;
  int64_t max_tokens = 0;  // resolved
  int64_t cost = 0;        // rows × (prompt + new tokens)
  std::string key;         // requests with one key share an engine batch
  std::promise<std::pair<int, json>> response;
  bool joined = false;  // started while an engine batch was decoding (continuous batching)
};

class Engine {
 public:
  Engine(const ServeOptions& options, model::Transformer model, tokenizer::LoadedTokenizer tok,
         std::string name)
      : options_(options), model_(std::move(model)), tokenizer_(std::move(tok)),
        name_(std::move(name)) {
    vocab_limit_ = tokenizer_.tokenizer->vocab_size();
    pad_ = tokenizer_.info.pad_id >= 0 ? tokenizer_.info.pad_id
                                       : std::max<int64_t>(tokenizer_.info.eos_id, 0);
    worker_ = std::thread([this] { run(); });
  }
  ~Engine() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  const std::string& name() const { return name_; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_.tokenizer; }
  int64_t context() const { return model_->config().max_position_embeddings; }
  int64_t tokenizer_size() const { return vocab_limit_; }

  // Queues a checked request; 503 when the queue is full.
  std::future<std::pair<int, json>> submit(std::unique_ptr<Pending> pending) {
    std::future<std::pair<int, json>> future = pending->response.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (int64_t(queue_.size()) + running_ >= options_.max_queue) {
        throw RequestError(503, "", "the server is busy (" + std::to_string(options_.max_queue) +
                                        " requests queued or running); retry later");
      }
      queue_.push_back(std::move(pending));
    }
    wake_.notify_one();
    return future;
  }

 private:
  void run() {
    torch::NoGradGuard no_grad;
    for (;;) {
      std::vector<std::unique_ptr<Pending>> batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) break;
        // The oldest request, then every queued one that samples alike, within the token budget;
        // more such requests join while it decodes (take_alike).
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
        int64_t cost = batch[0]->cost;
        for (auto it = queue_.begin(); it != queue_.end();) {
          if ((*it)->key == batch[0]->key && cost + (*it)->cost <= options_.max_batch_tokens) {
            cost += (*it)->cost;
            batch.push_back(std::move(*it));
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
        running_ += int64_t(batch.size());
      }
      std::vector<std::unique_ptr<Active>> actives;
      try {
        process(batch, actives);
      } catch (const std::exception& error) {
        spdlog::error("serve: a batch of {} request(s) failed: {}", actives.size(), error.what());
        for (auto& active : actives) {
          if (!active->answered) {
            finish(*active, {500, error_body(500, std::string("internal error: ") + error.what())});
          }
        }
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& pending : queue_) {
      pending->response.set_value({503, error_body(503, "the server is shutting down")});
    }
  }

  // A request being answered: one engine row per sample (prompt i's samples consecutive).
  struct Active {
    std::unique_ptr<Pending> pending;
    std::vector<std::vector<int64_t>> prompts;  // per row
    std::vector<uint64_t> seeds;                // per row
    std::vector<std::vector<int64_t>> responses;
    std::vector<std::string> finish;
    std::vector<json> stop_reason;
    int64_t remaining = 0;
    bool answered = false;
  };

  std::unique_ptr<Active> activate(std::unique_ptr<Pending> pending) {
    try {
      return make_active(std::move(pending));
    } catch (...) {  // the request is dropped unanswered (its client sees a broken promise)
      std::lock_guard<std::mutex> lock(mutex_);
      --running_;
      throw;
    }
  }

  std::unique_ptr<Active> make_active(std::unique_ptr<Pending> pending) {
    auto active = std::make_unique<Active>();
    const uint64_t base = pending->request.seed ? *pending->request.seed : random_seed();
    for (size_t i = 0; i < pending->prompts.size(); ++i) {
      for (int64_t j = 0; j < pending->request.n; ++j) {
        active->prompts.push_back(pending->prompts[i]);
        active->seeds.push_back(rollout::sample_seed(base, int64_t(i), j));
      }
    }
    const size_t rows = active->prompts.size();
    active->responses.resize(rows);
    active->finish.assign(rows, "length");
    active->stop_reason.assign(rows, nullptr);
    active->remaining = int64_t(rows);
    active->pending = std::move(pending);
    return active;
  }

  // The oldest queued request, counted as running, if it samples like `key` and its rows cost
  // at most `row_cost` each; null otherwise. Only the oldest, so that a stream of alike
  // requests cannot keep one of other settings waiting.
  std::unique_ptr<Pending> take_alike(const std::string& key, int64_t row_cost) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) return nullptr;
    Pending& oldest = *queue_.front();
    const int64_t rows = int64_t(oldest.prompts.size()) * oldest.request.n;
    if (oldest.key != key || oldest.cost > row_cost * rows) return nullptr;
    std::unique_ptr<Pending> pending = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    pending->joined = true;
    return pending;
  }

  void finish(Active& active, std::pair<int, json> answer) {
    active.answered = true;
    active.pending->response.set_value(std::move(answer));
    std::lock_guard<std::mutex> lock(mutex_);
    --running_;
  }

  // Generation with continuous batching: the batch's rows start together, and each row whose
  // request is queued later with the same sampling settings takes a free decoding slot; a request
  // is answered as soon as its last row finishes.
  void process(std::vector<std::unique_ptr<Pending>>& batch,
               std::vector<std::unique_ptr<Active>>& actives) {
    std::vector<std::pair<Active*, size_t>> owner;  // engine row → request, its row
    for (auto& pending : batch) {
      actives.push_back(activate(std::move(pending)));
      for (size_t i = 0; i < actives.back()->prompts.size(); ++i) owner.push_back({actives.back().get(), i});
    }
    const Pending& first = *actives[0]->pending;
    const CompletionRequest& request = first.request;
    const int64_t max_tokens = first.max_tokens;
    if (max_tokens == 0) {
      for (auto& active : actives) answer(*active);
      return;
    }
    std::vector<std::vector<int64_t>> prompts;
    rollout::GenerationParams params;
    for (auto& active : actives) {
      prompts.insert(prompts.end(), active->prompts.begin(), active->prompts.end());
      params.row_seeds.insert(params.row_seeds.end(), active->seeds.begin(), active->seeds.end());
    }
    params.sampling.temperature = request.temperature;
    params.sampling.top_p = request.top_p;
    params.sampling.top_k = request.top_k;
    params.sampling.min_p = request.min_p;
    params.max_new_tokens = max_tokens;
    if (!request.ignore_eos) params.stop_token_ids = tokenizer_.info.stop_ids;
    for (int64_t id : request.stop_token_ids) params.stop_token_ids.push_back(id);
    params.pad_id = pad_;
    params.vocab_limit = vocab_limit_;
    // Decoding slots from the token budget (rows beyond them wait for a free slot); requests
    // join while fewer than 16 slots' worth of rows have gone through this batch, so that its
    // bookkeeping stays bounded.
    int64_t row_cost = 1;
    for (const auto& active : actives) {
      const auto& p = *active->pending;
      row_cost = std::max<int64_t>(row_cost, p.cost / std::max<int64_t>(1, int64_t(p.prompts.size()) * p.request.n));
    }
    params.max_active_rows = std::max<int64_t>(1, options_.max_batch_tokens / row_cost);
    const int64_t max_rows = 16 * params.max_active_rows;
    int64_t total_rows = int64_t(prompts.size());
    std::deque<std::pair<std::vector<int64_t>, uint64_t>> joining;  // rows of a request that joined
    const std::string key = first.key;
    params.next_row = [&](std::vector<int64_t>& prompt, uint64_t& seed) {
      if (joining.empty()) {
        if (total_rows >= max_rows) return false;
        std::unique_ptr<Pending> next = take_alike(key, row_cost);
        if (!next) return false;
        actives.push_back(activate(std::move(next)));
        Active* active = actives.back().get();
        total_rows += int64_t(active->prompts.size());
        for (size_t i = 0; i < active->prompts.size(); ++i) {
          owner.push_back({active, i});
          joining.push_back({active->prompts[i], active->seeds[i]});
        }
      }
      prompt = std::move(joining.front().first);
      seed = joining.front().second;
      joining.pop_front();
      return true;
    };
    params.on_row_finished = [&](int64_t row, const std::vector<int64_t>& response,
                                 rollout::FinishReason reason) {
      auto [active, i] = owner.at(size_t(row));
      active->responses[i] = response;
      if (reason != rollout::FinishReason::kLength) active->finish[i] = "stop";
      if (reason == rollout::FinishReason::kStop) {
        const std::string text = tokenizer().decode(response, true);
        for (const std::string& stop : request.stop) {
          if (text.find(stop) != std::string::npos) {
            active->stop_reason[i] = stop;
            break;
          }
        }
      } else if (reason == rollout::FinishReason::kEos && !response.empty()) {
        for (int64_t id : request.stop_token_ids) {
          if (id == response.back()) active->stop_reason[i] = id;
        }
      }
      if (--active->remaining == 0) answer(*active);
    };
    rollout::StopChecker stops;
    if (!request.stop.empty()) {
      const tokenizer::Tokenizer* tok = tokenizer_.tokenizer.get();
      stops = rollout::make_stop_checker(
          [tok](const std::vector<int64_t>& ids) { return tok->decode(ids, true); }, request.stop);
    }
    rollout::generate(model_, prompts, params, stops);
  }

  // The scoring pass of a request's rows that asked for log-probs, then its answer; a failure
  // answers this request 500 and leaves the others of the batch alone.
  void answer(Active& active) {
    try {
      answer_or_throw(active);
    } catch (const std::exception& error) {
      spdlog::error("serve: a request failed: {}", error.what());
      if (!active.answered) {
        finish(active, {500, error_body(500, std::string("internal error: ") + error.what())});
      }
    }
    // What the engine no longer needs of an answered request.
    std::vector<std::vector<int64_t>>().swap(active.prompts);
    std::vector<std::vector<int64_t>>().swap(active.responses);
  }

  void answer_or_throw(Active& active) {
    const CompletionRequest& request = active.pending->request;
    const size_t rows = active.prompts.size();
    std::vector<PositionScores> scores(rows);
    if (request.logprobs || request.prompt_logprobs) {
      std::vector<std::vector<int64_t>> sequences;
      for (size_t r = 0; r < rows; ++r) {
        sequences.push_back(active.prompts[r]);
        sequences.back().insert(sequences.back().end(), active.responses[r].begin(),
                                active.responses[r].end());
      }
      const int64_t k = std::max(request.logprobs.value_or(0), request.prompt_logprobs.value_or(0));
      scores = score(sequences, std::vector<int64_t>(rows, k));
    }
    json choices = json::array();
    int64_t prompt_tokens = 0, completion_tokens = 0;
    for (const auto& prompt : active.pending->prompts) prompt_tokens += int64_t(prompt.size());
    for (size_t r = 0; r < rows; ++r) {
      completion_tokens += int64_t(active.responses[r].size());
      choices.push_back(choice(*active.pending, int64_t(r), active.prompts[r], active.responses[r],
                               scores[r], active.finish[r], active.stop_reason[r]));
    }
    json body = {{"id", "cmpl-" + random_hex()},
                 {"object", "text_completion"},
                 {"created", std::time(nullptr)},
                 {"model", name_},
                 {"choices", std::move(choices)},
                 {"service_tier", nullptr},
                 {"system_fingerprint", nullptr},
                 {"usage",
                  {{"prompt_tokens", prompt_tokens},
                   {"total_tokens", prompt_tokens + completion_tokens},
                   {"completion_tokens", completion_tokens},
                   {"prompt_tokens_details", nullptr}}},
                 {"kv_transfer_params", nullptr}};
    if (active.pending->joined) body["joined"] = true;  // for the log line; not sent
    finish(active, {200, std::move(body)});
  }

  // Scores of every position of `sequences` at temperature 1 with the top ks[i] alternatives:
  // sequences are packed into forwards of at most max_batch_tokens padded tokens, and logits are
  // formed for 256 positions at a time.
  std::vector<PositionScores> score(const std::vector<std::vector<int64_t>>& sequences,
                                    const std::vector<int64_t>& ks) {
    std::vector<PositionScores> out(sequences.size());
    const torch::Device device = model_->output_weight().device();
    const torch::Tensor weight = model_->output_weight();  // (V, H)
    for (size_t begin = 0; begin < sequences.size();) {
      size_t end = begin + 1;
      int64_t longest = int64_t(sequences[begin].size());
      while (end < sequences.size()) {
        const int64_t next = std::max(longest, int64_t(sequences[end].size()));
        if (next * int64_t(end + 1 - begin) > options_.max_batch_tokens) break;
        longest = next;
        ++end;
      }
      const int64_t rows = int64_t(end - begin);
      torch::Tensor ids = torch::full({rows, longest}, pad_, torch::kLong);  // (B, T)
      torch::Tensor mask = torch::zeros({rows, longest}, torch::kLong);     // (B, T)
      for (int64_t b = 0; b < rows; ++b) {
        const auto& sequence = sequences[begin + size_t(b)];
        ids[b].narrow(0, 0, int64_t(sequence.size())).copy_(torch::tensor(sequence, torch::kLong));
        mask[b].narrow(0, 0, int64_t(sequence.size())).fill_(1);
      }
      const torch::Tensor hidden = model_->hidden_states(ids.to(device), mask.to(device));
      for (int64_t b = 0; b < rows; ++b) {
        const auto& sequence = sequences[begin + size_t(b)];
        const int64_t length = int64_t(sequence.size());
        PositionScores& scores = out[begin + size_t(b)];
        const int64_t k = ks[begin + size_t(b)];
        scores.logprob.assign(size_t(length), 0.0);
        scores.rank.assign(size_t(length), 0);
        scores.top.assign(size_t(length), {});
        const torch::Tensor targets =
            torch::tensor(sequence, torch::kLong).to(device);  // (L)
        constexpr int64_t kChunk = 256;
        for (int64_t a = 0; a + 1 < length; a += kChunk) {
          const int64_t e = std::min(length - 1, a + kChunk);
          const torch::Tensor logits =
              torch::matmul(hidden[b].slice(0, a, e), weight.t()).to(torch::kFloat);  // (C, V)
          const torch::Tensor logp = torch::log_softmax(logits, -1);
          const torch::Tensor next = targets.slice(0, a + 1, e + 1).unsqueeze(1);  // (C, 1)
          const torch::Tensor actual = logp.gather(1, next);                      // (C, 1)
          const torch::Tensor rank = (logp >= actual).sum(1).to(torch::kLong).cpu();
          const torch::Tensor actual_cpu = actual.squeeze(1).to(torch::kDouble).cpu();
          torch::Tensor top_values, top_ids;
          if (k > 0) {  // ranked among the tokenizer's ids (padded embedding rows never listed)
            const torch::Tensor candidates = logp.narrow(1, 0, std::min(vocab_limit_, logp.size(1)));
            std::tie(top_values, top_ids) = candidates.topk(std::min(k, candidates.size(1)), 1);
            top_values = top_values.to(torch::kDouble).cpu().contiguous();
            top_ids = top_ids.cpu().contiguous();
          }
          for (int64_t c = 0; c < e - a; ++c) {
            const size_t position = size_t(a + c + 1);
            scores.logprob[position] = actual_cpu[c].item<double>();
            scores.rank[position] = rank[c].item<int64_t>();
            if (k > 0) {
              const double* values = top_values[c].data_ptr<double>();
              const int64_t* idx = top_ids[c].data_ptr<int64_t>();
              for (int64_t t = 0; t < top_values.size(1); ++t) {
                scores.top[position].push_back({idx[t], values[t]});
              }
            }
          }
        }
      }
      begin = end;
    }
    return out;
  }

  static double finite(double value) { return std::isfinite(value) ? value : -9999.0; }

  std::string piece(int64_t id, bool as_id) const {
    if (as_id) return "token_id:" + std::to_string(id);
    return tokenizer().decode({id}, false);
  }

  // A position's alternatives for `k`: the actual token, then the top k (the actual token once).
  std::vector<std::pair<int64_t, double>> alternatives(const PositionScores& scores,
                                                       size_t position, int64_t actual,
                                                       int64_t k) const {
    std::vector<std::pair<int64_t, double>> out = {{actual, scores.logprob[position]}};
    for (int64_t t = 0; t < k && t < int64_t(scores.top[position].size()); ++t) {
      if (scores.top[position][size_t(t)].first != actual) {
        out.push_back(scores.top[position][size_t(t)]);
      }
    }
    return out;
  }

  json choice(const Pending& pending, int64_t index, const std::vector<int64_t>& prompt,
              const std::vector<int64_t>& response, const PositionScores& scores,
              const std::string& finish, const json& stop_reason) const {
    const CompletionRequest& request = pending.request;
    std::string text = tokenizer().decode(response, request.skip_special_tokens);
    if (stop_reason.is_string()) {  // vLLM's default: the stop string is not part of the text
      const size_t at = text.find(stop_reason.get<std::string>());
      if (at != std::string::npos) text.resize(at);
    }
    if (request.echo) text = tokenizer().decode(prompt, request.skip_special_tokens) + text;
    json logprobs = nullptr;
    if (request.logprobs) {
      const int64_t k = *request.logprobs;
      logprobs = {{"text_offset", json::array()},
                  {"token_logprobs", json::array()},
                  {"tokens", json::array()},
                  {"top_logprobs", json::array()}};
      const size_t first = request.echo ? 0 : prompt.size();
      int64_t offset = 0;
      for (size_t p = first; p < prompt.size() + response.size(); ++p) {
        const int64_t id = p < prompt.size() ? prompt[p] : response[p - prompt.size()];
        const std::string token = piece(id, request.return_tokens_as_token_ids);
        logprobs["tokens"].push_back(token);
        logprobs["text_offset"].push_back(offset);
        offset += int64_t(token.size());
        if (p == 0) {
          logprobs["token_logprobs"].push_back(nullptr);
          logprobs["top_logprobs"].push_back(nullptr);
          continue;
        }
        logprobs["token_logprobs"].push_back(finite(scores.logprob[p]));
        json top = json::object();
        for (const auto& [alt, value] : alternatives(scores, p, id, k)) {
          top[piece(alt, request.return_tokens_as_token_ids)] = finite(value);
        }
        logprobs["top_logprobs"].push_back(std::move(top));
      }
    }
    json prompt_logprobs = nullptr;
    if (request.prompt_logprobs) {
      prompt_logprobs = json::array({nullptr});
      for (size_t p = 1; p < prompt.size(); ++p) {
        json entry = json::object();
        for (const auto& [alt, value] : alternatives(scores, p, prompt[p], *request.prompt_logprobs)) {
          int64_t rank = scores.rank[p];
          if (alt != prompt[p]) {
            for (size_t t = 0; t < scores.top[p].size(); ++t) {
              if (scores.top[p][t].first == alt) rank = int64_t(t) + 1;
            }
          }
          entry[std::to_string(alt)] = {
              {"logprob", finite(value)}, {"rank", rank}, {"decoded_token", piece(alt, false)}};
        }
        prompt_logprobs.push_back(std::move(entry));
      }
    }
    return {{"index", index},
            {"text", text},
            {"logprobs", logprobs},
            {"finish_reason", finish},
            {"stop_reason", stop_reason},
            {"prompt_logprobs", prompt_logprobs}};
  }

  uint64_t random_seed() {
    std::lock_guard<std::mutex> lock(random_mutex_);
    return random_();
  }
  std::string random_hex() {
    std::lock_guard<std::mutex> lock(random_mutex_);
    char buffer[33];
    std::snprintf(buffer, sizeof buffer, "%016llx%016llx", (unsigned long long)random_(),
                  (unsigned long long)random_());
    return buffer;
  }

  const ServeOptions options_;
  model::Transformer model_;
  tokenizer::LoadedTokenizer tokenizer_;
  std::string name_;
  int64_t vocab_limit_ = 0;
  int64_t pad_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Pending>> queue_;
  int64_t running_ = 0;
  bool stopping_ = false;
  std::mutex random_mutex_;
  std::mt19937_64 random_{std::random_device{}()};
  std::thread worker_;
};

// What the request log line says about the request being handled on this thread.
thread_local Clock::time_point request_start;
thread_local std::string request_detail;

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void reply_error(httplib::Response& res, const RequestError& error) {
  if (error.status() == 503) res.set_header("Retry-After", "1");
  reply(res, error.status(), error_body(error.status(), error.what(), error.param()));
  request_detail = dump_json(std::string(error.what()));  // quoted, invalid UTF-8 replaced
}

std::unique_ptr<Pending> checked(const Engine& engine, const std::string& body,
                                 const RequestLimits& limits) {
  auto pending = std::make_unique<Pending>();
  pending->request = parse_completion_request(body, limits);
  CompletionRequest& request = pending->request;
  if (!request.model.empty() && request.model != engine.name()) {
    throw RequestError(404, "model",
                       "The model `" + request.model + "` does not exist (this server serves `" +
                           engine.name() + "`).");
  }
  int64_t longest = 0;
  for (size_t i = 0; i < request.prompts.size(); ++i) {
    PromptInput& prompt = request.prompts[i];
    std::vector<int64_t> ids =
        prompt.is_text ? engine.tokenizer().encode(prompt.text, request.add_special_tokens)
                       : prompt.ids;
    if (ids.empty()) {
      throw RequestError(400, "prompt", "prompt: prompt " + std::to_string(i) + " has no tokens");
    }
    longest = std::max(longest, int64_t(ids.size()));
    pending->prompts.push_back(std::move(ids));
  }
  pending->max_tokens =
      request.max_tokens >= 0 ? request.max_tokens : std::max<int64_t>(0, engine.context() - longest);
  if (longest > engine.context() || pending->max_tokens > engine.context() - longest) {
    throw RequestError(400, longest > engine.context() ? "prompt" : "max_tokens",
                       "This model's maximum context length is " +
                           std::to_string(engine.context()) + " tokens. However, you requested " +
                           (pending->max_tokens > engine.context()
                                ? std::string("more than that")
                                : std::to_string(longest + pending->max_tokens)) + " tokens (" +
                           std::to_string(longest) + " in the prompt, " +
                           std::to_string(pending->max_tokens) +
                           " in the completion). Please reduce the prompt or max_tokens.");
  }
  const int64_t rows = int64_t(pending->prompts.size()) * request.n;
  pending->cost = rows * (longest + pending->max_tokens);  // ≤ 1024 × 2 × context: no overflow
  if (request.logprobs || request.prompt_logprobs) {
    constexpr int64_t kMaxEntries = 8'000'000;
    const int64_t k = std::max(request.logprobs.value_or(0), request.prompt_logprobs.value_or(0));
    const int64_t entries = pending->cost * (k + 1);
    if (entries > kMaxEntries) {
      throw RequestError(400, request.logprobs ? "logprobs" : "prompt_logprobs",
                         "this request asks for up to " + std::to_string(entries) +
                             " log-prob entries (rows × tokens × (k + 1)); at most " +
                             std::to_string(kMaxEntries) + " per request: split it");
    }
  }
  json key = {pending->max_tokens, request.temperature, request.top_p,     request.top_k,
              request.min_p,        request.stop,        request.stop_token_ids,
              request.ignore_eos};
  pending->key = key.dump();
  return pending;
}

}  // namespace

void serve(const ServeOptions& options) {
  if (options.max_queue < 1) core::throw_bad_input("serve: --max-queue must be at least 1");
  if (options.max_batch_tokens < 1) core::throw_bad_input("serve: --max-batch-tokens must be at least 1");
  if (options.port < 0 || options.port > 65535) core::throw_bad_input("serve: --port must be in [0, 65535]");
  const std::string device = core::resolve_device(options.device, "--device");
  tokenizer::LoadedTokenizer tokenizer = tokenizer::load_tokenizer(options.model);
  model::Transformer model = scoring::load_frozen(options.model, options.dtype, device);
  if (tokenizer.tokenizer->vocab_size() > model->config().vocab_size) {
    core::throw_bad_input(options.model + ": the tokenizer has " +
                          std::to_string(tokenizer.tokenizer->vocab_size()) +
                          " tokens but the model only " +
                          std::to_string(model->config().vocab_size) + " embedding rows");
  }
  std::string name = options.served_name;
  if (name.empty()) {
    name = std::filesystem::path(options.model).lexically_normal().filename().string();
    if (name.empty()) name = std::filesystem::path(options.model).lexically_normal().parent_path().filename().string();
  }
  Engine engine(options, std::move(model), std::move(tokenizer), name);
  RequestLimits limits;
  limits.max_logprobs = options.max_logprobs;
  limits.vocab_size = engine.tokenizer_size();  // ids the tokenizer can decode
  const std::time_t created = std::time(nullptr);

  httplib::Server server;
  const int64_t threads = options.http_threads > 0 ? options.http_threads : options.max_queue + 4;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  server.set_payload_max_length(size_t(options.max_body_bytes));
  server.set_read_timeout(30, 0);
  server.set_write_timeout(30, 0);
  server.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    request_start = Clock::now();
    request_detail.clear();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::info("{} {} {} {:.1f} ms{}{}", req.method, req.path, res.status, ms_since(request_start),
                 request_detail.empty() ? "" : " ", request_detail);
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        reply(res, 500, error_body(500, "internal error: " + what));
        request_detail = dump_json(what);
      });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own answer
    const std::string message = res.status == 413 ? "the request body is too large"
                                : res.status == 404 ? "no route " + req.method + " " + req.path
                                                    : "bad request";
    reply(res, res.status, error_body(res.status, message));
  });

  server.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  server.Get("/v1/models", [&engine, &options, created](const httplib::Request&,
                                                        httplib::Response& res) {
    json card = {{"id", engine.name()},
                 {"object", "model"},
                 {"created", created},
                 {"owned_by", "gopd"},
                 {"root", options.model},
                 {"parent", nullptr},
                 {"max_model_len", engine.context()},
                 {"permission", json::array()},
                 {"vocab_size", engine.tokenizer_size()}};
    reply(res, 200, {{"object", "list"}, {"data", json::array({card})}});
  });
  server.Post("/tokenize", [&engine](const httplib::Request& req, httplib::Response& res) {
    try {
      const TokenizeRequest request = parse_tokenize_request(req.body);
      if (!request.model.empty() && request.model != engine.name()) {
        throw RequestError(404, "model", "The model `" + request.model + "` does not exist.");
      }
      const std::vector<int64_t> ids =
          engine.tokenizer().encode(request.prompt, request.add_special_tokens);
      reply(res, 200, {{"count", ids.size()}, {"max_model_len", engine.context()},
                       {"tokens", ids}, {"token_strs", nullptr}});
    } catch (const RequestError& error) {
      reply_error(res, error);
    }
  });
  server.Post("/v1/completions", [&engine, &limits](const httplib::Request& req,
                                                    httplib::Response& res) {
    try {
      std::unique_ptr<Pending> pending = checked(engine, req.body, limits);
      const size_t prompts = pending->prompts.size();
      const int64_t n = pending->request.n, max_tokens = pending->max_tokens;
      std::future<std::pair<int, json>> answer = engine.submit(std::move(pending));
      auto [status, body] = answer.get();
      if (status == 200) {
        request_detail = "prompts=" + std::to_string(prompts) + " n=" + std::to_string(n) +
                         " max_tokens=" + std::to_string(max_tokens) +
                         " prompt_tokens=" + body["usage"]["prompt_tokens"].dump() +
                         " completion_tokens=" + body["usage"]["completion_tokens"].dump() +
                         (body.contains("joined") ? " joined_running_batch" : "");
        body.erase("joined");
      } else {
        request_detail = dump_json(body["error"]["message"]);
      }
      reply(res, status, body);
    } catch (const RequestError& error) {
      reply_error(res, error);
    }
  });

  // cpp-httplib listens with a backlog of 5, so a burst of new connections waits for TCP's 1 s
  // SYN retry: the listening socket is kept and its backlog raised once bound.
  std::atomic<int> listening{-1};
  server.set_socket_options([&listening](socket_t sock) {
    httplib::default_socket_options(sock);
    listening = sock;
  });
  int port = options.port;
  if (port == 0) {
    port = server.bind_to_any_port(options.host);
    if (port < 0) core::throw_runtime_failure("serve: cannot bind " + options.host);
  } else if (!server.bind_to_port(options.host, port)) {
    core::throw_runtime_failure("serve: cannot listen on " + options.host + ":" +
                                std::to_string(port) + " (in use, or not an address of this host)");
  }
  if (listening >= 0) ::listen(listening, SOMAXCONN);
  spdlog::info("serve: model '{}' ({}) on {}; listening on http://{}:{}", engine.name(),
               options.model, device, options.host, port);
  if (options.host != "127.0.0.1" && options.host != "localhost" && options.host != "::1") {
    spdlog::warn("serve: listening on {} without authentication; put it behind your own proxy",
                 options.host);
  }
  if (!server.listen_after_bind()) core::throw_runtime_failure("serve: the listener failed");
}

}  // namespace gopd::serve
