// Scoring without the loop: a TeacherSet of fake teachers (each a Scorer whose logits are a
// known function of the tokens) routes each row to its record's teacher, scores consecutive
// rows of one teacher in one call, never runs a reference for a λ = 1 teacher (its own logits
// stand in), and its sampled-token scores equal log-softmax of the right teacher's logits,
// whatever the micro-batch size.
#include <gtest/gtest.h>

#include <array>
#include <memory>

#include "gopd/core/error.h"
#include "gopd/scoring/teachers.h"

namespace {

using namespace gopd;

constexpr int64_t kVocab = 7;

// logits[b, t, v] = scale · sin(v + 3·target[b, t] + offset): a fixed, distinct function per
// fake, as a head whose hidden states are those logits and whose output matrix is the identity.
class FakeScorer : public scoring::Scorer {
 public:
  FakeScorer(double scale, double offset) : scale_(scale), offset_(offset) {}
  kernels::LogitHead target_head(const scoring::TrainingSequences& s, int64_t begin,
                                 int64_t end) override {
    calls.push_back({begin, end});
    return kernels::frozen_head(logits(s, begin, end), torch::eye(kVocab), torch::kFloat,
                                chunk_rows);
  }
  torch::Tensor logits(const scoring::TrainingSequences& s, int64_t begin, int64_t end) const {
    const torch::Tensor targets =
        s.targets.slice(0, begin, end).to(torch::kFloat).unsqueeze(-1);  // (b, T, 1)
    const torch::Tensor v = torch::arange(kVocab, torch::kFloat).view({1, 1, kVocab});
    return scale_ * torch::sin(v + 3.0 * targets + offset_);  // (b, T, V)
  }
  torch::Tensor response_logprobs(const scoring::TrainingSequences&, double, int64_t,
                                  kernels::Impl) override {
    ADD_FAILURE() << "not used by teacher scoring";
    return {};
  }
  std::vector<std::vector<double>> prompt_logprobs(const std::vector<std::vector<int64_t>>&,
                                                   int64_t, int64_t) override {
    ADD_FAILURE() << "not used by teacher scoring";
    return {};
  }
  std::vector<std::pair<int64_t, int64_t>> calls;
  int64_t chunk_rows = 0;

 private:
  double scale_, offset_;
};

struct Fixture {
  std::shared_ptr<FakeScorer> plain =
      std::make_shared<FakeScorer>(1.0, 0.0);  // λ = 1, no reference
  std::shared_ptr<FakeScorer> expert = std::make_shared<FakeScorer>(2.0, 0.5);     // λ = 1.5
  std::shared_ptr<FakeScorer> reference = std::make_shared<FakeScorer>(0.5, 1.0);  // expert's π_ref
  scoring::TeacherSet set;
  scoring::TrainingSequences sequences;
  Fixture() {
    set.add({"plain", plain, 1.0, nullptr});
    set.add({"expert", expert, 1.5, reference});
    // Five rows, ragged responses.
    sequences = scoring::pair_sequences({{1, 2}, {3}, {4, 5, 6}, {2}, {1}},
                                        {{3, 4, 5}, {6}, {1, 2}, {5, 5, 5}, {0, 1}}, 0);
  }
};

torch::Tensor expected_logprobs(FakeScorer& scorer, const scoring::TrainingSequences& s,
                                int64_t row, double temperature) {
  const torch::Tensor logits = scorer.logits(s, row, row + 1) / temperature;  // (1, T, V)
  return torch::log_softmax(logits, -1)
      .gather(-1, s.targets.slice(0, row, row + 1).unsqueeze(-1))
      .squeeze(-1)[0];
}

TEST(TeacherScoring, RecordsAreRoutedToTheTeacherTheyName) {
  Fixture f;
  data::Record record;
  record.source = "train.jsonl:3";
  record.teacher = "expert";
  EXPECT_EQ(f.set.teacher_of(record), 1u);
  record.teacher = "nobody";
  try {
    f.set.teacher_of(record);
    FAIL() << "an unknown teacher must be refused";
  } catch (const core::Error& error) {
    EXPECT_NE(std::string(error.what()).find("train.jsonl:3: teacher 'nobody'"), std::string::npos)
        << error.what();
  }
  scoring::TeacherSet single;
  single.add({"only", f.plain, 1.0, nullptr});
  EXPECT_EQ(single.teacher_of(record), 0u);  // one teacher scores every record, whatever it names

  const scoring::RowRouting routing = f.set.route({0, 0, 1, 1, 0});
  EXPECT_EQ(routing.lambda, (std::vector<double>{1.0, 1.0, 1.5, 1.5, 1.0}));
  EXPECT_TRUE(routing.any_reference);
  EXPECT_TRUE(
      torch::equal(routing.own_reference, torch::tensor({false, false, true, true, false})));
  EXPECT_TRUE(torch::equal(routing.lambda_of(1, 4), torch::tensor({1.0f, 1.5f, 1.5f})));
}

TEST(TeacherScoring, EachRunOfRowsGetsItsTeachersHeadAndLambdaOneRowsSkipTheReference) {
  Fixture f;
  const scoring::RowRouting routing = f.set.route({0, 0, 1, 1, 0});
  const std::vector<objective::TeacherHeads> heads = f.set.heads(f.sequences, routing, 0, 5, true);
  // Consecutive rows of one teacher in one call: plain [0, 2) and [4, 5), expert [2, 4).
  EXPECT_EQ(f.plain->calls, (std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {4, 5}}));
  EXPECT_EQ(f.expert->calls, (std::vector<std::pair<int64_t, int64_t>>{{2, 4}}));
  EXPECT_EQ(f.reference->calls,
            (std::vector<std::pair<int64_t, int64_t>>{{2, 4}}));  // never for λ = 1 rows
  ASSERT_EQ(heads.size(), 3u);
  const std::vector<std::array<int64_t, 2>> spans{{0, 2}, {2, 4}, {4, 5}};
  for (size_t i = 0; i < heads.size(); ++i) {
    const objective::TeacherHeads& segment = heads[i];
    EXPECT_EQ(segment.begin, spans[i][0]);
    EXPECT_EQ(segment.end, spans[i][1]);
    const bool expert = i == 1;
    EXPECT_EQ(segment.lambda, expert ? 1.5 : 1.0);
    FakeScorer& own = expert ? *f.expert : *f.plain;
    EXPECT_TRUE(torch::equal(segment.teacher.all_logits(),
                             own.logits(f.sequences, segment.begin, segment.end)))
        << "segment " << i;
    EXPECT_EQ(segment.reference.defined(), expert) << "segment " << i;
    if (expert) {
      EXPECT_TRUE(torch::equal(segment.reference.all_logits(),
                               f.reference->logits(f.sequences, 2, 4)));
    }
  }
  // Relative to `begin`: rows [1, 4) are plain [0, 1) and expert [1, 3).
  const auto part = f.set.heads(f.sequences, routing, 1, 4, true);
  ASSERT_EQ(part.size(), 2u);
  EXPECT_EQ(part[1].begin, 1);
  EXPECT_EQ(part[1].end, 3);
  // Without a reference slot nothing but the teachers runs.
  f.reference->calls.clear();
  for (const auto& segment : f.set.heads(f.sequences, routing, 0, 5, false))
    EXPECT_FALSE(segment.reference.defined());
  EXPECT_TRUE(f.reference->calls.empty());
}

TEST(TeacherScoring, SampledTokenScoresAreTheRightTeachersLogProbsForAnyMicroBatch) {
  for (const int64_t micro : {0, 1, 2, 3}) {
    Fixture f;
    // Logits two rows at a time (a chunk splits responses) when the micro-batch is odd.
    for (auto* fake : {f.plain.get(), f.expert.get(), f.reference.get()})
      fake->chunk_rows = micro % 2 == 1 ? 2 : 0;
    scoring::ScoredBatch scored;
    scored.sequences = f.sequences;
    scored.routing = f.set.route({1, 0, 0, 1, 1});
    f.set.score_tokens(scored, micro, 0.7, kernels::Impl::reference);
    ASSERT_TRUE(scored.reference.defined());
    for (int64_t r = 0; r < 5; ++r) {
      const bool expert = scored.routing.teacher[size_t(r)] == 1;
      FakeScorer& own = expert ? *f.expert : *f.plain;
      FakeScorer& ref = expert ? *f.reference : *f.plain;
      EXPECT_TRUE(torch::allclose(scored.teacher[r], expected_logprobs(own, f.sequences, r, 0.7),
                                  1e-6, 1e-6))
          << "micro " << micro << " row " << r;
      EXPECT_TRUE(torch::allclose(scored.reference[r], expected_logprobs(ref, f.sequences, r, 0.7),
                                  1e-6, 1e-6))
          << "micro " << micro << " row " << r;
    }
  }
  // Only λ = 1 teachers: no reference pass, no reference scores.
  Fixture f;
  scoring::ScoredBatch scored;
  scored.sequences = f.sequences;
  scored.routing = f.set.route({0, 0, 0, 0, 0});
  f.set.score_tokens(scored, 2, 1.0, kernels::Impl::fused);
  EXPECT_FALSE(scored.reference.defined());
  EXPECT_TRUE(f.reference->calls.empty());
  EXPECT_EQ(scored.teacher.sizes(), (std::vector<int64_t>{5, 3}));
}

}  // namespace
