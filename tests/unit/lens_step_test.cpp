// The LENS step without the loop: fake policy/reference scores, a fake sampler and a fake
// verifier. A low-success group whose prompt has one token the policy moved on is purified
// (that token deleted), rolled out again, and its purified successes replace its failures (one
// failure kept), with CRPO's log w̃ on every row of the rebuilt group; a group at τ or above and
// a group whose scores are all zero are left alone; the metrics and the dump say so; with no
// low-success group nothing is scored or sampled.
#include <gtest/gtest.h>

#include <cmath>

#include "gopd/lens/lens_step.h"

namespace {

using namespace gopd;

constexpr int64_t kN = 4;

lens::RlvrRows rows_with(const lens::Prompts& prompts, const std::vector<double>& correct) {
  lens::RlvrRows rows;
  for (size_t r = 0; r < correct.size(); ++r) {
    rows.prompt.push_back(prompts[r / kN]);
    rows.response.push_back({int64_t(100 + r)});
    rows.reward.push_back(correct[r]);
    rows.correct.push_back(correct[r]);
    rows.rollout_logprobs.push_back({-1.0f});
  }
  rows.roll_prompt = rows.prompt;
  rows.log_weight.assign(correct.size(), 0.0);
  return rows;
}

struct Fakes {
  int scored = 0, sampled = 0;
  std::vector<int64_t> verified_groups;
  lens::LensHooks hooks() {
    lens::LensHooks h;
    // The policy moved on token 13 only (|Δ| = 4); everywhere else it agrees with π_ref.
    h.policy_prompt_logprobs = [this](const lens::Prompts& prompts) {
      ++scored;
      std::vector<std::vector<double>> out;
      for (const auto& p : prompts) {
        std::vector<double> values(p.size(), -1.0);
        for (size_t j = 0; j < p.size(); ++j) values[j] = p[j] == 13 ? -5.0 : -1.0;
        out.push_back(values);
      }
      return out;
    };
    h.reference_prompt_logprobs = [](const lens::Prompts& prompts) {
      std::vector<std::vector<double>> out;
      for (const auto& p : prompts) out.emplace_back(p.size(), -1.0);
      return out;
    };
    h.sample = [this](const std::vector<int64_t>& groups, const lens::Prompts& prompts) {
      EXPECT_EQ(groups.size(), prompts.size());
      ++sampled;
      EXPECT_EQ(prompts, (lens::Prompts{{10, 11, 12, 14, 15}}));
      lens::Samples s;
      s.responses = {{7, 7}, {8}, {9, 9, 9}, {6}};
      s.logprobs = {{-0.1f, -0.2f}, {-0.3f}, {-0.4f, -0.5f, -0.6f}, {-0.7f}};
      s.generated_tokens = 7;
      return s;
    };
    h.verify = [this](const std::vector<int64_t>& groups, const lens::Prompts& responses) {
      verified_groups = groups;
      std::vector<reward::RewardResult> results;
      for (const auto& response : responses) {
        reward::RewardResult result;
        result.correct = response[0] == 9 ? 0.0 : 1.0;
        result.reward = result.correct + 0.1;
        results.push_back(result);
      }
      return results;
    };
    h.eligible_span = [](int64_t) { return std::pair<int64_t, int64_t>{1, 6}; };
    h.decode = [](const std::vector<int64_t>& ids) {
      std::string text;
      for (const int64_t id : ids) text += "<" + std::to_string(id) + ">";
      return text;
    };
    return h;
  }
};

core::LensConfig config() {
  core::LensConfig c;
  c.tau = 0.5;
  c.gamma = 0.2;  // ⌈0.2 · 5 eligible⌉ = 1 token
  c.max_replace = 0;
  c.keep_failure = true;
  c.dump_every = 1;
  return c;
}

const lens::Prompts kPrompts = {
    {10, 11, 12, 13, 14, 15}, {30, 31, 32, 33, 34, 35}, {20, 21, 22, 23, 24, 25}};

// The step on kPrompts (records "a", "b", "c") at step 1 with the fakes' hooks.
lens::LensStepResult run_step(const core::LensConfig& c, lens::WeightScheme scheme,
                              lens::RlvrRows& rows, Fakes& fakes, nlohmann::json& line) {
  return lens::lens_step(c, scheme, kN, 0, kPrompts, {"a", "b", "c"}, rows, fakes.hooks(), line);
}

TEST(LensStep, PurifiesTransfersAndWeighsTheLowSuccessGroup) {
  // Group 0: ā = 0.25 (< τ, token 13 moved); group 1: ā = 0.75; group 2: ā = 0 but nothing moved.
  lens::RlvrRows rows = rows_with(kPrompts, {1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0});
  const lens::RlvrRows before = rows;
  Fakes fakes;
  nlohmann::json line;
  const lens::LensStepResult result =
      run_step(config(), lens::WeightScheme::crpo, rows, fakes, line);
  EXPECT_EQ(result.transferred,
            2);  // failures 1 and 2 take purified successes 0 and 1; failure 3 stays
  EXPECT_EQ(fakes.verified_groups, (std::vector<int64_t>{0, 0, 0, 0}));
  const std::vector<int64_t> purified = {10, 11, 12, 14, 15};
  EXPECT_EQ(rows.response[1], (std::vector<int64_t>{7, 7}));
  EXPECT_EQ(rows.response[2], (std::vector<int64_t>{8}));
  EXPECT_EQ(rows.roll_prompt[1], purified);
  EXPECT_EQ(rows.roll_prompt[2], purified);
  EXPECT_EQ(rows.prompt[1], kPrompts[0]);  // trained on the original prompt
  EXPECT_EQ(rows.rollout_logprobs[2], (std::vector<float>{-0.3f}));
  EXPECT_EQ(rows.correct[1], 1.0);
  EXPECT_DOUBLE_EQ(rows.reward[2], 1.1);
  EXPECT_EQ(rows.response[3], before.response[3]);  // the kept failure
  EXPECT_EQ(rows.roll_prompt[3], kPrompts[0]);
  // CRPO: w̃ = ā = 0.25 for the original success, 1 − ā = 0.75 for the rest of the rebuilt group.
  EXPECT_DOUBLE_EQ(rows.log_weight[0], std::log(0.25));
  for (const size_t r : {1, 2, 3}) EXPECT_DOUBLE_EQ(rows.log_weight[r], std::log(0.75));
  for (size_t r = 4; r < 12; ++r) {
    EXPECT_EQ(rows.log_weight[r], 0.0) << r;
    EXPECT_EQ(rows.response[r], before.response[r]) << r;
  }
  EXPECT_DOUBLE_EQ(line["lens/low_success_fraction"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(line["lens/purified_fraction"].get<double>(), 1.0 / 3.0);
  EXPECT_EQ(line["lens/tokens_removed"].get<double>(), 1.0);
  EXPECT_EQ(line["lens/success_before"].get<double>(), 0.25);
  EXPECT_EQ(line["lens/success_after"].get<double>(), 0.75);
  EXPECT_EQ(line["lens/helped_fraction"].get<double>(), 1.0);
  EXPECT_EQ(line["lens/transferred"].get<int64_t>(), 2);
  EXPECT_EQ(line["lens/rebuilt_groups"].get<int64_t>(), 1);
  EXPECT_EQ(line["lens/all_correct_rebuilt_groups"].get<int64_t>(), 0);
  EXPECT_EQ(line["lens/purified_rollout_tokens"].get<int64_t>(), 7);
  // One dump line: group 0's record, token 13 at position 3 removed with its score.
  const nlohmann::json dump = nlohmann::json::parse(result.dump);
  EXPECT_EQ(dump["id"], "a");
  EXPECT_EQ(dump["step"], 1);
  EXPECT_EQ(dump["purified_prompt"], "<10><11><12><14><15>");
  ASSERT_EQ(dump["removed"].size(), 1u);
  EXPECT_EQ(dump["removed"][0]["position"], 3);
  EXPECT_EQ(dump["removed"][0]["id"], 13);
  EXPECT_DOUBLE_EQ(dump["removed"][0]["score"].get<double>(), 4.0);
  EXPECT_EQ(dump["transferred"], 2);
}

TEST(LensStep, UniformWeightsAndNoDumpBetweenDumpSteps) {
  lens::RlvrRows rows = rows_with(kPrompts, {1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0});
  Fakes fakes;
  nlohmann::json line;
  core::LensConfig c = config();
  c.dump_every = 2;
  const lens::LensStepResult result = run_step(c, lens::WeightScheme::uniform, rows, fakes, line);
  EXPECT_EQ(result.transferred, 2);
  for (const double w : rows.log_weight) EXPECT_EQ(w, 0.0);
  EXPECT_TRUE(result.dump.empty());  // step 1 is not a multiple of 2
}

TEST(LensStep, NothingIsScoredOrSampledWithoutALowSuccessGroup) {
  lens::RlvrRows rows = rows_with(kPrompts, {1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1});
  const lens::RlvrRows before = rows;
  Fakes fakes;
  nlohmann::json line;
  const lens::LensStepResult result =
      run_step(config(), lens::WeightScheme::crpo, rows, fakes, line);
  EXPECT_EQ(result.transferred, 0);
  EXPECT_EQ(fakes.scored, 0);
  EXPECT_EQ(fakes.sampled, 0);
  EXPECT_EQ(rows.response, before.response);
  EXPECT_EQ(line["lens/low_success_fraction"].get<double>(), 0.0);
  EXPECT_EQ(line["lens/transferred"].get<int64_t>(), 0);
}

}  // namespace
