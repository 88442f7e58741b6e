// The completions client of served teachers and references: see client.h.
#include "gopd/serve/client.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "gopd/core/error.h"
#include "gopd/serve/completions.h"

namespace gopd::serve {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

}  // namespace

CompletionsClient::CompletionsClient(Endpoint endpoint) : endpoint_(std::move(endpoint)) {
  std::string url = endpoint_.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.size() >= 3 && url.compare(url.size() - 3, 3, "/v1") == 0) url.resize(url.size() - 3);
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos || (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)) {
    core::throw_bad_input(endpoint_.label + ".url: expected http://host:port, got \"" +
                          endpoint_.url + "\"");
  }
  const size_t path = url.find('/', scheme + 3);
  base_ = url.substr(0, path);
  prefix_ = path == std::string::npos ? "" : url.substr(path);
  if (base_.size() <= scheme + 3) {
    core::throw_bad_input(endpoint_.label + ".url: no host in \"" + endpoint_.url + "\"");
  }
}

// At most endpoint.concurrency calls of one client talk to the server at once.
class CompletionsClient::Slot {
 public:
  explicit Slot(CompletionsClient& client) : client_(client) {
    std::unique_lock<std::mutex> lock(client_.slots_mutex_);
    client_.slots_free_.wait(lock, [this] { return client_.in_flight_ < client_.endpoint_.concurrency; });
    ++client_.in_flight_;
  }
  ~Slot() {
    {
      std::lock_guard<std::mutex> lock(client_.slots_mutex_);
      --client_.in_flight_;
    }
    client_.slots_free_.notify_one();
  }

 private:
  CompletionsClient& client_;
};

std::string CompletionsClient::call(const std::string& method, const std::string& path,
                                    const std::string& body) {
  const Slot slot(*this);
  if (unreachable_) {  // another call already waited out the timeout: fail at once
    core::throw_runtime_failure(endpoint_.label + " (" + endpoint_.url + "): " + unreachable_message_);
  }
  const auto start = Clock::now();
  double wait = 0.25;
  std::string last_error;
  for (int attempt = 0;; ++attempt) {
    httplib::Client client(base_);
    client.set_connection_timeout(10, 0);
    client.set_read_timeout(std::max<time_t>(1, time_t(endpoint_.timeout_s)), 0);
    client.set_write_timeout(60, 0);
    httplib::Headers headers;
    if (!endpoint_.api_key.empty()) headers.emplace("Authorization", "Bearer " + endpoint_.api_key);
    const httplib::Result result =
        method == "GET" ? client.Get(prefix_ + path, headers)
                        : client.Post(prefix_ + path, headers, body, "application/json");
    if (result && result->status >= 200 && result->status < 300) return result->body;
    // Retried: connection errors, overload (429, 503), gateways (502, 504) and server errors
    // (500: a gopd serve batch that failed for another client's request); the rest is a refusal.
    const bool retry = !result || result->status == 429 || result->status >= 500;
    if (!retry) {
      std::string message = result->body;
      try {
        const json error = json::parse(result->body);
        if (error.contains("error") && error["error"].is_object()) {
          message = error["error"].value("message", result->body);
        } else if (error.contains("message")) {
          message = error.value("message", result->body);
        }
      } catch (const json::exception&) {
      }
      core::throw_bad_input(endpoint_.label + " (" + endpoint_.url + "): " + method + " " + path +
                            " was refused with HTTP " + std::to_string(result->status) + ": " +
                            message);
    }
    last_error = result ? "HTTP " + std::to_string(result->status)
                        : httplib::to_string(result.error());
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (elapsed + wait > endpoint_.timeout_s) {
      const std::string message =
          "no answer to " + method + " " + path + " after " + std::to_string(int64_t(elapsed)) +
          " s and " + std::to_string(attempt + 1) + " tries (last: " + last_error +
          "). Is the server running? Once it is, continue the run with --resume auto.";
      {
        std::lock_guard<std::mutex> lock(slots_mutex_);
        if (!unreachable_) unreachable_message_ = message;
        unreachable_ = true;
      }
      core::throw_runtime_failure(endpoint_.label + " (" + endpoint_.url + "): " + message);
    }
    if (attempt == 0 || attempt % 8 == 0) {
      spdlog::warn("{} ({}): {} {} failed ({}); retrying for up to {:.0f} s", endpoint_.label,
                   endpoint_.url, method, path, last_error, endpoint_.timeout_s - elapsed);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    wait = std::min(wait * 2, 5.0);
  }
}

ServedModel CompletionsClient::served_model() {
  const std::string body = call("GET", "/v1/models", "");
  json list;
  try {
    list = json::parse(body);
  } catch (const json::exception& error) {
    core::throw_bad_input(endpoint_.label + " (" + endpoint_.url +
                          "): GET /v1/models did not answer JSON: " + error.what());
  }
  if (!list.contains("data") || !list["data"].is_array() || list["data"].empty()) {
    core::throw_bad_input(endpoint_.label + " (" + endpoint_.url + "): GET /v1/models lists no model");
  }
  // The named model, or the only one; every listed name for the message otherwise.
  std::vector<std::string> names;
  const json* chosen = nullptr;
  for (const json& card : list["data"]) {
    if (!card.is_object() || !card.contains("id") || !card["id"].is_string()) continue;
    names.push_back(card["id"].get<std::string>());
    if (endpoint_.model.empty() ? list["data"].size() == 1 : names.back() == endpoint_.model) {
      chosen = &card;
    }
  }
  if (chosen == nullptr) {
    std::string all;
    for (const std::string& name : names) all += (all.empty() ? "" : ", ") + name;
    core::throw_bad_input(endpoint_.label + ".model: " +
                          (endpoint_.model.empty() ? std::string("the server serves several models")
                                                   : "'" + endpoint_.model + "' is not served") +
                          " (" + all + "); name one");
  }
  ServedModel model;
  model.id = (*chosen)["id"].get<std::string>();
  if (chosen->contains("max_model_len") && (*chosen)["max_model_len"].is_number_integer()) {
    model.max_model_len = (*chosen)["max_model_len"].get<int64_t>();
  }
  if (chosen->contains("vocab_size") && (*chosen)["vocab_size"].is_number_integer()) {
    model.vocab_size = (*chosen)["vocab_size"].get<int64_t>();
  }
  endpoint_.model = model.id;
  return model;
}

std::vector<int64_t> CompletionsClient::tokenize(const std::string& text, bool add_special_tokens) {
  const json request = {{"model", endpoint_.model},
                        {"prompt", text},
                        {"add_special_tokens", add_special_tokens}};
  const std::string body = call("POST", "/tokenize", dump_json(request));
  try {
    return json::parse(body).at("tokens").get<std::vector<int64_t>>();
  } catch (const json::exception& error) {
    core::throw_bad_input(endpoint_.label + " (" + endpoint_.url +
                          "): POST /tokenize answered no token list: " + error.what());
  }
}

std::vector<std::vector<PositionLogprobs>> CompletionsClient::score_group(
    const std::vector<std::vector<int64_t>>& sequences, int64_t k) {
  const json request = {{"model", endpoint_.model}, {"prompt", sequences},
                        {"max_tokens", 0},          {"echo", true},
                        {"temperature", 1.0},       {"prompt_logprobs", k}};
  const std::string body = call("POST", "/v1/completions", dump_json(request));
  const std::string where = endpoint_.label + " (" + endpoint_.url + "): ";
  std::vector<std::vector<PositionLogprobs>> out(sequences.size());
  try {
    const json answer = json::parse(body);
    const json& choices = answer.at("choices");
    if (!choices.is_array() || choices.size() != sequences.size()) {
      core::throw_runtime_failure(where + "the server answered " +
                                  std::to_string(choices.is_array() ? choices.size() : 0) +
                                  " choices for " + std::to_string(sequences.size()) + " prompts");
    }
    for (size_t c = 0; c < choices.size(); ++c) {
      const size_t i = choices[c].contains("index") ? choices[c]["index"].get<size_t>() : c;
      if (i >= sequences.size() || !out[i].empty()) {
        core::throw_runtime_failure(where + "the server's choice indices do not match the prompts");
      }
      const std::vector<int64_t>& sequence = sequences[i];
      const json& entries = choices[c].at("prompt_logprobs");
      if (!entries.is_array() || entries.size() != sequence.size()) {
        core::throw_runtime_failure(
            where + "prompt_logprobs of prompt " + std::to_string(i) + " has " +
            std::to_string(entries.is_array() ? entries.size() : 0) + " entries for " +
            std::to_string(sequence.size()) +
            " tokens (does the server re-tokenize, or add a BOS token to token-id prompts?)");
      }
      out[i].resize(sequence.size());
      for (size_t j = 1; j < sequence.size(); ++j) {
        const json& entry = entries[j];
        const std::string actual = std::to_string(sequence[j]);
        if (!entry.is_object() || !entry.contains(actual)) {
          core::throw_runtime_failure(where + "prompt_logprobs of prompt " + std::to_string(i) +
                                      " has no log-prob for token " + actual + " at position " +
                                      std::to_string(j));
        }
        PositionLogprobs& position = out[i][j];
        position.actual = entry[actual].at("logprob").get<double>();
        for (const auto& [id, value] : entry.items()) {
          position.top.push_back({std::stoll(id), value.at("logprob").get<double>()});
        }
        std::sort(position.top.begin(), position.top.end(),
                  [](const auto& a, const auto& b) { return a.second > b.second; });
        if (int64_t(position.top.size()) > k) position.top.resize(size_t(k));
      }
    }
  } catch (const json::exception& error) {
    core::throw_runtime_failure(where + "an answer to POST /v1/completions is not the expected "
                                        "shape: " + error.what());
  } catch (const std::logic_error& error) {  // std::stoll on a key that is not a token id
    core::throw_runtime_failure(where + "prompt_logprobs keys must be token ids: " + error.what());
  }
  return out;
}

std::vector<std::vector<PositionLogprobs>> CompletionsClient::prompt_logprobs(
    const std::vector<std::vector<int64_t>>& sequences, int64_t k) {
  std::vector<std::vector<PositionLogprobs>> out(sequences.size());
  const size_t group = size_t(std::max<int64_t>(1, endpoint_.rows_per_request));
  std::vector<std::future<void>> running;
  std::exception_ptr failure;
  const auto collect = [&running, &failure](size_t keep) {
    while (running.size() > keep) {
      try {
        running.front().get();
      } catch (...) {
        if (!failure) failure = std::current_exception();
      }
      running.erase(running.begin());
    }
  };
  for (size_t begin = 0; begin < sequences.size(); begin += group) {
    const size_t end = std::min(sequences.size(), begin + group);
    collect(size_t(std::max<int64_t>(1, endpoint_.concurrency)) - 1);
    if (failure) break;
    running.push_back(std::async(std::launch::async, [this, &sequences, &out, begin, end, k] {
      std::vector<std::vector<int64_t>> part(sequences.begin() + long(begin),
                                             sequences.begin() + long(end));
      std::vector<std::vector<PositionLogprobs>> scores = score_group(part, k);
      for (size_t i = 0; i < scores.size(); ++i) out[begin + i] = std::move(scores[i]);
    }));
  }
  collect(0);
  if (failure) std::rethrow_exception(failure);
  return out;
}

}  // namespace gopd::serve
