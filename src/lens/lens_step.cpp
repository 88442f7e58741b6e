// The LENS step: see lens_step.h.
#include "gopd/lens/lens_step.h"

#include <algorithm>

#include "gopd/core/error.h"
#include "gopd/core/metrics.h"

namespace gopd::lens {
namespace {

// The purified prompts of a step: which groups, what was removed, and the scores it used.
struct PurifiedPrompts {
  std::vector<int64_t> groups;
  std::vector<Purification> purifications;
  std::vector<std::vector<double>> scores;
};

std::vector<double> group_values(const std::vector<double>& values, int64_t group, int64_t n) {
  return std::vector<double>(values.begin() + group * n, values.begin() + (group + 1) * n);
}

// 1. Low-success groups: ā < τ.
std::vector<int64_t> low_success_groups(const RlvrRows& rows, int64_t groups, int64_t n,
                                        double tau) {
  std::vector<int64_t> low;
  for (int64_t g = 0; g < groups; ++g) {
    const std::vector<double> correct = group_values(rows.correct, g, n);
    const double successes =
        double(std::count_if(correct.begin(), correct.end(), [](double c) { return c >= 1.0; }));
    if (successes / double(n) < tau) low.push_back(g);
  }
  return low;
}

// 2. Interference scores and purification of the low groups' prompts; groups whose
// purification removes nothing (or everything) are left out.
PurifiedPrompts purify_groups(const std::vector<int64_t>& low, const Prompts& prompts, double gamma,
                              const LensHooks& hooks) {
  PurifiedPrompts out;
  if (low.empty()) return out;
  Prompts low_prompts;
  for (const int64_t g : low) low_prompts.push_back(prompts[size_t(g)]);
  const std::vector<std::vector<double>> policy = hooks.policy_prompt_logprobs(low_prompts);
  const std::vector<std::vector<double>> reference = hooks.reference_prompt_logprobs(low_prompts);
  for (size_t k = 0; k < low.size(); ++k) {
    const int64_t g = low[k];
    const std::vector<int64_t>& ids = prompts[size_t(g)];
    const auto [first, last] = hooks.eligible_span(g);
    std::vector<bool> eligible(ids.size(), false);
    for (int64_t j = first; j < last; ++j) eligible[size_t(j)] = true;
    std::vector<double> scores = interference_scores(policy[k], reference[k]);
    Purification purification = purify(ids, scores, gamma, eligible, 0.0);
    if (purification.removed_positions.empty() || purification.kept_ids.empty()) continue;
    out.groups.push_back(g);
    out.purifications.push_back(std::move(purification));
    out.scores.push_back(std::move(scores));
  }
  return out;
}

// The dump line of one purified group.
std::string dump_line(int64_t step, const std::string& record_id, const std::vector<int64_t>& ids,
                      const Purification& purification, const std::vector<double>& scores,
                      const TransferPlan& plan, const LensHooks& hooks) {
  nlohmann::json removed = nlohmann::json::array();
  for (const int64_t position : purification.removed_positions) {
    const int64_t id = ids[size_t(position)];
    removed.push_back({{"position", position},
                       {"id", id},
                       {"text", hooks.decode({id})},
                       {"score", scores[size_t(position)]}});
  }
  return nlohmann::json({{"step", step + 1},
                         {"id", record_id},
                         {"prompt", hooks.decode(ids)},
                         {"purified_prompt", hooks.decode(purification.kept_ids)},
                         {"removed", removed},
                         {"success_before", plan.success_before},
                         {"success_after", plan.success_after},
                         {"transferred", int64_t(plan.replacements.size())}})
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

// The rollouts of purified group k (rows k·n … k·n + n − 1 of the purified samples).
PurifiedGroup purified_group(const std::vector<int64_t>& prompt, const Samples& samples,
                             const std::vector<reward::RewardResult>& results, int64_t k,
                             int64_t n) {
  PurifiedGroup group;
  group.prompt = prompt;
  for (int64_t i = k * n; i < (k + 1) * n; ++i) {
    group.responses.push_back(samples.responses[size_t(i)]);
    group.reward.push_back(results[size_t(i)].reward);
    group.correct.push_back(results[size_t(i)].correct);
    group.rollout_logprobs.push_back(samples.logprobs[size_t(i)]);
  }
  return group;
}

}  // namespace

WeightScheme parse_weight_scheme(const std::string& name) {
  if (name == "crpo") return WeightScheme::crpo;
  if (name == "crpo_literal") return WeightScheme::crpo_literal;
  if (name == "uniform") return WeightScheme::uniform;
  core::throw_bad_input("lens.weight_scheme: unknown scheme '" + name +
                        "' (crpo, crpo_literal, uniform)");
}

LensStepResult lens_step(const core::LensConfig& config, WeightScheme scheme, int64_t n,
                         int64_t step, const Prompts& prompts,
                         const std::vector<std::string>& record_ids, RlvrRows& rows,
                         const LensHooks& hooks, nlohmann::json& line) {
  LensStepResult result;
  const int64_t groups = int64_t(prompts.size());
  const std::vector<int64_t> low = low_success_groups(rows, groups, n, config.tau);
  core::put_ratio(line, "lens/low_success_fraction", double(low.size()), double(groups));
  const PurifiedPrompts purified = purify_groups(low, prompts, config.gamma, hooks);
  const int64_t count = int64_t(purified.groups.size());
  core::put_ratio(line, "lens/purified_fraction", double(count), double(groups));
  double removed = 0;
  for (const Purification& purification : purified.purifications)
    removed += double(purification.removed_positions.size());
  core::put_ratio(line, "lens/tokens_removed", removed, double(count));  // 0 without purified prompts
  if (count == 0) {
    line["lens/transferred"] = 0;
    return result;
  }
  // 3. n rollouts on each purified prompt, verified.
  Prompts purified_prompts;
  for (const Purification& purification : purified.purifications)
    purified_prompts.push_back(purification.kept_ids);
  const Samples samples = hooks.sample(purified.groups, purified_prompts);
  std::vector<int64_t> sample_groups;
  for (int64_t r = 0; r < count * n; ++r) sample_groups.push_back(purified.groups[size_t(r / n)]);
  const std::vector<reward::RewardResult> results = hooks.verify(sample_groups, samples.responses);
  std::vector<double> purified_correct;
  for (const reward::RewardResult& reward : results) purified_correct.push_back(reward.correct);
  // 4. Transfer, and the CRPO weights of the rebuilt groups.
  int64_t helped = 0, rebuilt_groups = 0;
  int64_t all_correct = 0;  // rebuilt groups left without a failure: all their advantages are 0
  double before_sum = 0, after_sum = 0;
  const bool dump = config.dump_every > 0 && (step + 1) % config.dump_every == 0;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t g = purified.groups[size_t(k)];
    const std::vector<double> original = group_values(rows.correct, g, n);
    const TransferPlan plan = plan_transfer(original, group_values(purified_correct, k, n),
                                            config.tau, config.max_replace, config.keep_failure);
    before_sum += plan.success_before;
    after_sum += plan.success_after;
    helped += plan.helped ? 1 : 0;
    if (!plan.replacements.empty()) {
      result.transferred += apply_transfer(
          rows, g, n, plan, crpo_weights(original, plan, scheme == WeightScheme::uniform),
          purified_group(purified_prompts[size_t(k)], samples, results, k, n));
      const std::vector<double> rebuilt = group_values(rows.correct, g, n);
      if (std::all_of(rebuilt.begin(), rebuilt.end(), [](double c) { return c >= 1.0; }))
        ++all_correct;
      ++rebuilt_groups;
    }
    if (dump) {
      result.dump +=
          dump_line(step, record_ids[size_t(g)], prompts[size_t(g)],
                    purified.purifications[size_t(k)], purified.scores[size_t(k)], plan, hooks);
    }
  }
  core::put_ratio(line, "lens/success_before", before_sum, double(count));
  core::put_ratio(line, "lens/success_after", after_sum, double(count));
  core::put_ratio(line, "lens/helped_fraction", double(helped), double(count));
  line["lens/transferred"] = result.transferred;
  line["lens/rebuilt_groups"] = rebuilt_groups;
  line["lens/all_correct_rebuilt_groups"] = all_correct;
  line["lens/purified_rollout_tokens"] = samples.generated_tokens;
  return result;
}

}  // namespace gopd::lens
