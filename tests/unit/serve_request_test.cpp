// gopd serve's request parsing (gopd/serve/completions.h): vLLM's defaults, every accepted
// prompt shape, and a 400 naming the field for each kind of bad value.
#include <gtest/gtest.h>

#include "gopd/serve/completions.h"

namespace {

using gopd::serve::CompletionRequest;
using gopd::serve::parse_completion_request;
using gopd::serve::RequestError;
using gopd::serve::RequestLimits;

RequestLimits limits() {
  RequestLimits out;
  out.vocab_size = 100;
  out.max_logprobs = 5;
  out.max_n = 4;
  out.max_prompts = 8;
  return out;
}

// The field a refused body names, or "<accepted>".
std::string refused_field(const std::string& body) {
  try {
    parse_completion_request(body, limits());
    return "<accepted>";
  } catch (const RequestError& error) {
    EXPECT_EQ(error.status(), 400) << body;
    return error.param().empty() ? "<body>" : error.param();
  }
}

TEST(ServeRequest, DefaultsAreVllms) {
  const CompletionRequest request = parse_completion_request(R"({"prompt": "hi"})", limits());
  ASSERT_EQ(request.prompts.size(), 1u);
  EXPECT_TRUE(request.prompts[0].is_text);
  EXPECT_EQ(request.prompts[0].text, "hi");
  EXPECT_EQ(request.max_tokens, 16);
  EXPECT_EQ(request.temperature, 1.0);
  EXPECT_EQ(request.top_p, 1.0);
  EXPECT_EQ(request.n, 1);
  EXPECT_FALSE(request.echo);
  EXPECT_FALSE(request.logprobs.has_value());
  EXPECT_FALSE(request.prompt_logprobs.has_value());
  EXPECT_FALSE(request.seed.has_value());
  EXPECT_TRUE(request.add_special_tokens);
  EXPECT_TRUE(request.skip_special_tokens);
}

TEST(ServeRequest, EveryPromptShape) {
  EXPECT_EQ(parse_completion_request(R"({"prompt": [1, 2, 3]})", limits()).prompts[0].ids,
            (std::vector<int64_t>{1, 2, 3}));
  const CompletionRequest batch =
      parse_completion_request(R"({"prompt": [[4, 5], "text", [6]], "n": 2})", limits());
  ASSERT_EQ(batch.prompts.size(), 3u);
  EXPECT_EQ(batch.prompts[0].ids, (std::vector<int64_t>{4, 5}));
  EXPECT_TRUE(batch.prompts[1].is_text);
  EXPECT_EQ(batch.prompts[2].ids, (std::vector<int64_t>{6}));
  EXPECT_EQ(parse_completion_request(R"({"prompt": [1], "max_tokens": null})", limits()).max_tokens, -1);
  EXPECT_EQ(parse_completion_request(R"({"prompt": [1], "max_tokens": 4.0})", limits()).max_tokens, 4);
  EXPECT_EQ(parse_completion_request(R"({"prompt": [1], "max_tokens": 0, "echo": true,
                                         "prompt_logprobs": 0})", limits()).prompt_logprobs, 0);
  EXPECT_EQ(parse_completion_request(R"({"prompt": [1], "stop": "x"})", limits()).stop,
            (std::vector<std::string>{"x"}));
  EXPECT_EQ(parse_completion_request(R"({"prompt": [1], "seed": -1})", limits()).seed,
            uint64_t(-1));
}

TEST(ServeRequest, BadValuesNameTheirField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "prompt"},
      {R"({"prompt": 3})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({"prompt": [[]]})", "prompt[0]"},
      {R"({"prompt": [100]})", "prompt[0]"},
      {R"({"prompt": [-1]})", "prompt[0]"},
      {R"({"prompt": [1, 1.5]})", "prompt[1]"},
      {R"({"prompt": [[1], 7]})", "prompt[1]"},
      {R"({"prompt": "a", "max_tokens": -1})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 1.5})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": "3"})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 1e300})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 18446744073709551615})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 9223372036854775808.0})", "max_tokens"},
      {R"({"prompt": "a", "seed": -9223372036854777856.0})", "seed"},
      {R"({"prompt": "a", "temperature": -0.5})", "temperature"},
      {R"({"prompt": "a", "top_p": 0})", "top_p"},
      {R"({"prompt": "a", "n": 0})", "n"},
      {R"({"prompt": "a", "n": 5})", "n"},
      {R"({"prompt": [[1], [2], [3]], "n": 3})", "n"},
      {R"({"prompt": "a", "logprobs": 6})", "logprobs"},
      {R"({"prompt": "a", "logprobs": true})", "logprobs"},
      {R"({"prompt": "a", "prompt_logprobs": -1})", "prompt_logprobs"},
      {R"({"prompt": "a", "echo": 1})", "echo"},
      {R"({"prompt": "a", "stop": [""]})", "stop"},
      {R"({"prompt": "a", "stop": [1]})", "stop[0]"},
      {R"({"prompt": "a", "stream": true})", "stream"},
      {R"({"prompt": "a", "logit_bias": {"1": 5}})", "logit_bias"},
      {R"({"prompt": "a", "best_of": 3})", "best_of"},
      {R"({"prompt": "a", "model": 3})", "model"},
      {R"([1, 2])", "<body>"},
      {R"({"prompt": "a")", "<body>"},
      {"{\"prompt\": \"\xff\"}", "<body>"},
  };
  for (const auto& [body, field] : cases) EXPECT_EQ(refused_field(body), field) << body;
  // What is accepted at its "off" value.
  EXPECT_EQ(refused_field(R"({"prompt": "a", "stream": false, "logit_bias": {},
                              "presence_penalty": 0, "best_of": 1, "suffix": null})"),
            "<accepted>");
}

}  // namespace
