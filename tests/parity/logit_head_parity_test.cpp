// The chunked lm_head path (kernels/logit_head.h) against the plain one — the whole logits at
// once, ordinary autograd — for every op the trainer feeds from heads: values, the gradients
// of the hidden states and of the output matrix, and the detached statistics (entropy, token
// accuracy). Awkward shapes: row counts that no chunk divides, chunks of one row, a chunk
// larger than the rows, an output matrix cut to fewer rows than it has (padded embeddings),
// bf16 compute, fused and reference kernels, several segments of teachers with different λ.
//
// Tolerances: fp32 compute, values ≤ 3e-5 · max(|x|, 1) and gradients ≤ 1e-5 · max |g|. The
// logits of a chunk are a smaller matmul than the whole (a one-row chunk is a gemv), so they
// differ from the plain path's in the last fp32 bit; the top-k tail bucket log(1 − Σ p)
// amplifies that to ~1e-5 (measured 8.6e-6 at one row per chunk), and the chunks sum the output
// matrix's gradient in another order than one matmul does. bf16 compute,
// both paths round the same bf16 products, gradients ≤ 1e-2 · max |g| (the plain path
// accumulates the weight gradient in bf16 inside one matmul, the chunked one in fp32).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gopd/kernels/logit_head.h"
#include "gopd/objective/gopd_loss.h"
#include "gopd/objective/sft_loss.h"

namespace gopd {
namespace {

constexpr int64_t kHidden = 24;
constexpr int64_t kVocab = 97;

struct Case {
  int64_t batch;
  int64_t steps;
  int64_t chunk;
  int64_t width;  // output rows kept (≤ kVocab)
  torch::ScalarType compute;
  kernels::Impl impl;
  std::string name() const {
    return "B " + std::to_string(batch) + " T " + std::to_string(steps) + " chunk " +
           std::to_string(chunk) + " width " + std::to_string(width) + " " +
           c10::toString(compute) + (impl == kernels::Impl::fused ? " fused" : " reference");
  }
};

std::vector<Case> cases() {
  std::vector<Case> all;
  for (const kernels::Impl impl : {kernels::Impl::fused, kernels::Impl::reference}) {
    all.push_back({3, 5, 4, kVocab, torch::kFloat, impl});    // 15 rows: 4 + 4 + 4 + 3
    all.push_back({2, 7, 1, 90, torch::kFloat, impl});        // one row per chunk, cut width
    all.push_back({4, 3, 5, 90, torch::kBFloat16, impl});     // bf16, 12 rows: 5 + 5 + 2
    all.push_back({1, 6, 100, kVocab, torch::kFloat, impl});  // one chunk larger than the rows
  }
  return all;
}

// A student head with fresh leaves: hidden (B, T, H) and the full (kVocab, H) matrix, cut.
struct StudentLeaves {
  torch::Tensor hidden;
  torch::Tensor matrix;
  kernels::LogitHead head(const Case& c, int64_t chunk) const {
    kernels::LogitHead h;
    h.hidden = hidden;
    h.weight = matrix.narrow(0, 0, c.width);
    h.compute_dtype = c.compute;
    h.chunk_rows = chunk;
    return h;
  }
};

StudentLeaves student_leaves(const Case& c, uint64_t seed) {
  torch::manual_seed(seed);
  StudentLeaves leaves;
  leaves.hidden = torch::randn({c.batch, c.steps, kHidden}).requires_grad_(true);
  leaves.matrix = (0.5 * torch::randn({kVocab, kHidden})).requires_grad_(true);
  return leaves;
}

kernels::LogitHead frozen(const Case& c, int64_t batch, uint64_t seed, int64_t hidden_size) {
  torch::manual_seed(seed);
  return kernels::frozen_head(torch::randn({batch, c.steps, hidden_size}),
                              (0.4 * torch::randn({c.width, hidden_size})), c.compute, c.chunk);
}

void expect_close(const torch::Tensor& chunked, const torch::Tensor& plain, double tolerance,
                  const std::string& what) {
  ASSERT_EQ(chunked.sizes(), plain.sizes()) << what;
  const double scale = std::max(1.0, plain.abs().max().item<double>());
  const double diff =
      (chunked.to(torch::kDouble) - plain.to(torch::kDouble)).abs().max().item<double>();
  EXPECT_LE(diff, tolerance * scale) << what << ": max |chunked − plain| = " << diff;
}

// Runs `loss_of(head)` on a chunked and a plain head of the same leaves and compares the loss,
// the extra outputs, and both leaves' gradients.
template <typename LossOf>
void compare(const Case& c, uint64_t seed, LossOf loss_of, const std::string& what) {
  const bool bf16 = c.compute == torch::kBFloat16;
  const double value_tolerance = bf16 ? 1e-4 : 3e-5;
  const double grad_tolerance = bf16 ? 1e-2 : 1e-5;
  StudentLeaves chunked = student_leaves(c, seed);
  StudentLeaves plain = student_leaves(c, seed);
  const std::vector<torch::Tensor> out_chunked = loss_of(chunked.head(c, c.chunk));
  const std::vector<torch::Tensor> out_plain = loss_of(plain.head(c, 0));
  ASSERT_EQ(out_chunked.size(), out_plain.size());
  for (size_t i = 0; i < out_plain.size(); ++i) {
    expect_close(out_chunked[i].detach(), out_plain[i].detach(), value_tolerance,
                 what + " output " + std::to_string(i));
  }
  out_chunked[0].backward();
  out_plain[0].backward();
  expect_close(chunked.hidden.grad(), plain.hidden.grad(), grad_tolerance, what + " d hidden");
  expect_close(chunked.matrix.grad(), plain.matrix.grad(), grad_tolerance, what + " d weight");
  // Rows past the cut width get no gradient, in both paths.
  if (c.width < kVocab) {
    EXPECT_EQ(chunked.matrix.grad().narrow(0, c.width, kVocab - c.width).abs().max().item<double>(),
              0.0)
        << what;
  }
  EXPECT_GT(chunked.hidden.grad().abs().max().item<double>(), 0.0) << what;
}

// Per-row weights so that each row's gradient has its own size (a plain sum would hide rows
// whose gradient came back in the wrong place).
torch::Tensor row_weights(const Case& c) {
  return torch::linspace(0.5, 2.0, c.batch * c.steps).view({c.batch, c.steps});
}

TEST(LogitHeadParity, TokenLogprobsAndEntropy) {
  for (const Case& c : cases()) {
    for (const double temperature : {1.0, 0.7}) {
      torch::manual_seed(11);
      const torch::Tensor tokens = torch::randint(0, c.width, {c.batch, c.steps}, torch::kLong);
      compare(
          c, 3,
          [&](const kernels::LogitHead& head) {
            const kernels::TokenLogprobs out =
                kernels::token_logprobs(head, tokens, temperature, true, c.impl);
            EXPECT_FALSE(out.entropy.requires_grad());
            return std::vector<torch::Tensor>{(out.logprobs * row_weights(c)).sum(), out.logprobs,
                                              out.entropy};
          },
          c.name() + " T " + std::to_string(temperature));
    }
  }
}

TEST(LogitHeadParity, GopdKlWithAndWithoutReference) {
  for (const Case& c : cases()) {
    for (const bool with_reference : {true, false}) {
      const kernels::LogitHead teacher = frozen(c, c.batch, 21, 16);
      const kernels::LogitHead reference =
          with_reference ? frozen(c, c.batch, 22, kHidden) : kernels::LogitHead{};
      const double lambda = with_reference ? 1.25 : 1.0;
      compare(
          c, 4,
          [&](const kernels::LogitHead& head) {
            const torch::Tensor kl =
                kernels::gopd_kl(head, teacher, reference, lambda, 0.8, c.impl);
            return std::vector<torch::Tensor>{(kl * row_weights(c)).sum(), kl};
          },
          c.name() + (with_reference ? " reference" : " no reference"));
    }
  }
}

TEST(LogitHeadParity, TopKFromHeadsEqualsTopKFromLogits) {
  for (const Case& c : cases()) {
    const kernels::LogitHead teacher = frozen(c, c.batch, 31, 16);
    const kernels::LogitHead reference = frozen(c, c.batch, 32, 16);
    const objective::TopK from_heads = objective::teacher_top_k(teacher, reference, 8, 0.9);
    const objective::TopK from_logits =
        objective::teacher_top_k(teacher.all_logits(), reference.all_logits(), 8, 0.9);
    EXPECT_TRUE(torch::equal(from_heads.ids, from_logits.ids)) << c.name();
    expect_close(from_heads.teacher_logprobs, from_logits.teacher_logprobs, 1e-6, c.name());
    expect_close(from_heads.reference_logprobs, from_logits.reference_logprobs, 1e-6, c.name());
    compare(
        c, 5,
        [&](const kernels::LogitHead& head) {
          const torch::Tensor kl =
              kernels::gopd_kl_topk(head, from_heads.ids, from_heads.teacher_logprobs,
                                    from_heads.reference_logprobs, 1.5, 0.9, c.impl);
          return std::vector<torch::Tensor>{(kl * row_weights(c)).sum(), kl};
        },
        c.name() + " top-k");
  }
}

// The loss functions of the trainer: the head forms equal the logits forms, and the teacher
// segments (different teachers, λ, hidden sizes) equal per-segment logits losses.
TEST(LogitHeadParity, VocabularyLossesOverTeacherSegmentsEqualTheLogitsForms) {
  for (const Case& c : cases()) {
    if (c.batch < 2) continue;
    torch::manual_seed(41);
    torch::Tensor mask = (torch::rand({c.batch, c.steps}) > 0.3).to(torch::kFloat);
    mask.select(1, 0).fill_(1.0);  // every row has a token: the segment means then add up
    // Rows [0, 1) by a λ = 1 teacher without reference, [1, B) by a λ = 1.5 teacher with one.
    std::vector<objective::TeacherHeads> segments(2);
    segments[0] = {0, 1, 1.0, frozen(c, 1, 42, 16), {}};
    segments[1] = {1, c.batch, 1.5, frozen(c, c.batch - 1, 43, 20), frozen(c, c.batch - 1, 44, 12)};
    for (const bool full_vocab : {true, false}) {
      const std::string what = c.name() + (full_vocab ? " full_vocab" : " top_k");
      StudentLeaves heads = student_leaves(c, 6);
      StudentLeaves logits = student_leaves(c, 6);
      const kernels::LogitHead head = heads.head(c, c.chunk);
      const objective::LossAgg agg = objective::LossAgg::seq_mean_token_mean;
      const objective::LossOutput from_heads =
          full_vocab ? objective::gopd_full_vocab_loss(head, segments, 0.9, mask, agg, c.impl)
                     : objective::gopd_top_k_loss(head, segments, 5, 0.9, mask, agg, c.impl);
      // Logits form: per segment, the segment's logits and the logits loss on its rows with
      // the segment's mask; aggregated the same way (seq_mean_token_mean is a mean of rows).
      const torch::Tensor student_logits = logits.head(c, 0).all_logits();
      torch::Tensor total = torch::zeros({});
      for (const objective::TeacherHeads& s : segments) {
        const torch::Tensor rows_logits = student_logits.slice(0, s.begin, s.end);
        const torch::Tensor rows_mask = mask.slice(0, s.begin, s.end);
        const torch::Tensor reference =
            s.reference.defined() ? s.reference.all_logits() : torch::Tensor();
        objective::LossOutput part;
        if (full_vocab) {
          part = objective::gopd_full_vocab_loss(rows_logits, s.teacher.all_logits(), reference,
                                                 s.lambda, 0.9, rows_mask, agg, c.impl);
        } else {
          const objective::TopK top =
              objective::teacher_top_k(s.teacher.all_logits(), reference, 5, 0.9);
          part = objective::gopd_top_k_loss(rows_logits, top.ids, top.teacher_logprobs,
                                            top.reference_logprobs, s.lambda, 0.9, rows_mask, agg,
                                            c.impl);
        }
        total = total + part.loss * double(s.end - s.begin) / double(c.batch);
      }
      expect_close(from_heads.loss.detach(), total.detach(), 1e-5, what + " loss");
      from_heads.loss.backward();
      total.backward();
      const double tolerance = c.compute == torch::kBFloat16 ? 1e-2 : 1e-5;
      expect_close(heads.hidden.grad(), logits.hidden.grad(), tolerance, what + " d hidden");
      expect_close(heads.matrix.grad(), logits.matrix.grad(), tolerance, what + " d weight");
      // Masked tokens get no gradient.
      const torch::Tensor masked = (mask == 0).unsqueeze(-1).expand_as(heads.hidden.grad());
      EXPECT_EQ(heads.hidden.grad().masked_select(masked).abs().max().item<double>(), 0.0) << what;
    }
  }
}

TEST(LogitHeadParity, SftLossFromAHeadEqualsTheLogitsForm) {
  for (const Case& c : cases()) {
    torch::manual_seed(51);
    const torch::Tensor targets = torch::randint(0, c.width, {c.batch, c.steps}, torch::kLong);
    const torch::Tensor mask = (torch::rand({c.batch, c.steps}) > 0.25).to(torch::kFloat);
    StudentLeaves heads = student_leaves(c, 7);
    StudentLeaves logits = student_leaves(c, 7);
    const objective::LossOutput from_head = objective::sft_loss(
        heads.head(c, c.chunk), targets, mask, objective::LossAgg::token_mean, c.impl);
    const objective::LossOutput from_logits = objective::sft_loss(
        logits.head(c, 0).all_logits(), targets, mask, objective::LossAgg::token_mean, c.impl);
    expect_close(from_head.loss.detach(), from_logits.loss.detach(), 1e-5, c.name());
    expect_close(from_head.metrics.at("sft/token_accuracy"),
                 from_logits.metrics.at("sft/token_accuracy"), 1e-6, c.name() + " accuracy");
    from_head.loss.backward();
    from_logits.loss.backward();
    const double tolerance = c.compute == torch::kBFloat16 ? 1e-2 : 1e-5;
    expect_close(heads.hidden.grad(), logits.hidden.grad(), tolerance, c.name() + " d hidden");
    expect_close(heads.matrix.grad(), logits.matrix.grad(), tolerance, c.name() + " d weight");
  }
}

TEST(LogitHeadParity, MismatchedHeadsAreRefused) {
  kernels::LogitHead head;
  head.hidden = torch::randn({2, 3, 8});
  head.weight = torch::randn({10, 9});
  EXPECT_THROW(kernels::token_logprobs(head, torch::zeros({2, 3}, torch::kLong), 1.0, false,
                                       kernels::Impl::fused),
               std::invalid_argument);
  kernels::LogitHead student;
  student.hidden = torch::randn({2, 3, 8});
  student.weight = torch::randn({10, 8});
  kernels::LogitHead teacher = student;
  teacher.hidden = torch::randn({1, 3, 8});
  EXPECT_THROW(kernels::gopd_kl(student, teacher, {}, 1.0, 1.0, kernels::Impl::fused),
               std::invalid_argument);
}

}  // namespace
}  // namespace gopd
