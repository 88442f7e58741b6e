// G-OPD objectives: the sampled-token advantage and loss, full-vocabulary and top-k reverse KL
// to q ∝ π_T^λ · π_ref^(1−λ), and the teacher top-k helper. Formulas: DESIGN.md "On-policy
// distillation and G-OPD (sampled-token form)" and "Full-vocabulary G-OPD"; summary in
// include/gopd/objective/gopd_loss.h.
//
// Departure from the official code: λ may differ per sequence (a teacher may override it), so
// it is a (B) tensor broadcast over T. The advantage is evaluated as (λ·lt − lo) + (1 − λ)·lr,
// algebraically the DESIGN formula, so that λ = 1 reproduces standard OPD bit for bit.
#include "gopd/objective/gopd_loss.h"

#include "gopd/kernels/adamw.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace gopd::objective {
namespace {

[[noreturn]] void fail(const char* op, const std::string& message) {
  throw std::invalid_argument(std::string(op) + ": " + message);
}

std::string shape_of(const torch::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes();
  return out.str();
}

void check_rank(const char* op, const char* name, const torch::Tensor& tensor, int64_t rank,
                const char* layout) {
  if (!tensor.defined()) fail(op, std::string(name) + " is undefined");
  if (tensor.dim() != rank) {
    fail(op, std::string(name) + " must be " + layout + ", got shape " + shape_of(tensor));
  }
}

void check_like(const char* op, const char* name, const torch::Tensor& tensor,
                const torch::Tensor& like) {
  if (!tensor.defined()) fail(op, std::string(name) + " is undefined");
  if (tensor.sizes() != like.sizes()) {
    fail(op, std::string(name) + " has shape " + shape_of(tensor) + ", expected " + shape_of(like));
  }
}

// The mask of a (B, T, V) or (B, T, k) tensor is (B, T).
void check_mask_of(const char* op, const torch::Tensor& mask, const torch::Tensor& logits) {
  if (!mask.defined() || mask.dim() != 2 || mask.size(0) != logits.size(0) ||
      mask.size(1) != logits.size(1)) {
    fail(op, "mask must be (B, T) = the logits' leading dimensions " + shape_of(logits) + ", got " +
                 (mask.defined() ? shape_of(mask) : std::string("undefined")));
  }
}

void check_lambda_without_reference(const char* op, double lambda) {
  if (lambda != 1.0) {
    fail(op, "lambda = " + std::to_string(lambda) +
                 " needs a reference model (π_ref); without one only lambda = 1 (standard OPD) "
                 "is defined");
  }
}

torch::ScalarType compute_dtype(const torch::Tensor& tensor) {
  return tensor.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// Per-sequence λ as a (B, 1) column (or (1, 1) for a single value) in `like`'s dtype/device.
torch::Tensor lambda_column(const char* op, const torch::Tensor& lambda,
                            const torch::Tensor& like) {  // like: (B, T)
  if (!lambda.defined()) return torch::ones({1, 1}, like.options());
  if (lambda.dim() > 1 || (lambda.numel() != like.size(0) && lambda.numel() != 1)) {
    fail(op, "lambda must be (B) = (" + std::to_string(like.size(0)) +
                 ") or a single value, got shape " + shape_of(lambda));
  }
  return lambda.detach().to(like.options()).reshape({-1, 1});
}

// log softmax(logits / T) at `ids`, without keeping a log-softmax of the whole row.
torch::Tensor gathered_logprobs(const torch::Tensor& logits,            // (T, V)
                                const torch::Tensor& ids,               // (T, k) int64
                                double temperature) {                   // -> (T, k) fp32
  const torch::Tensor scaled = logits.to(torch::kFloat) / temperature;  // (T, V)
  return scaled.gather(-1, ids) - torch::logsumexp(scaled, -1, /*keepdim=*/true);
}

}  // namespace

torch::Tensor gopd_advantage(const GopdTokenLogprobs& logprobs, const torch::Tensor& lambda,
                             const torch::Tensor& mask) {
  const char* op = "gopd_advantage";
  check_rank(op, "teacher log-probs", logprobs.teacher, 2, "(B, T)");
  check_like(op, "old log-probs", logprobs.old, logprobs.teacher);
  if (logprobs.reference.defined()) {
    check_like(op, "reference log-probs", logprobs.reference, logprobs.teacher);
  }
  check_like(op, "mask", mask, logprobs.teacher);
  torch::NoGradGuard no_grad;
  const torch::ScalarType dtype = compute_dtype(logprobs.teacher);
  const torch::Tensor teacher = logprobs.teacher.detach().to(dtype);  // (B, T)
  const torch::Tensor old = logprobs.old.detach().to(dtype);          // (B, T)
  const torch::Tensor lam = lambda_column(op, lambda, teacher);       // (B, 1)
  torch::Tensor advantage;                                            // (B, T)
  if (!logprobs.reference.defined()) {
    if (lambda.defined() && (lam != 1.0).any().item<bool>()) {
      fail(op,
           "every lambda must be 1 without reference log-probs (π_ref cancels only at "
           "lambda = 1); configure a reference model for lambda != 1");
    }
    advantage = teacher - old;
  } else {
    const torch::Tensor reference = logprobs.reference.detach().to(dtype);  // (B, T)
    advantage = (lam * teacher - old) + (1.0 - lam) * reference;
  }
  return advantage.masked_fill(mask == 0, 0.0);
}

LossOutput gopd_sampled_token_loss(const torch::Tensor& logp, const GopdTokenLogprobs& logprobs,
                                   const torch::Tensor& lambda, const torch::Tensor& logp_rollout,
                                   const torch::Tensor& mask, const GopdLossOptions& options) {
  const char* op = "gopd_sampled_token_loss";
  check_rank(op, "logp", logp, 2, "(B, T)");
  check_like(op, "teacher log-probs", logprobs.teacher, logp);
  const torch::Tensor advantage = gopd_advantage(logprobs, lambda, mask);  // (B, T)
  const torch::Tensor weights =
      logp_rollout.defined()
          ? truncated_importance_weights(logprobs.old, logp_rollout, options.importance_cap)
          : torch::Tensor();  // (B, T) or undefined
  PolicyLossOptions policy;
  policy.agg = options.agg;
  policy.clipped = options.clipped;
  policy.clip_low = options.clip_low;
  policy.clip_high = options.clip_high;
  LossOutput out = policy_gradient_loss(logp, logprobs.old, advantage, weights, mask, policy);

  torch::NoGradGuard no_grad;
  const torch::Tensor teacher = logprobs.teacher.detach().to(advantage.scalar_type());  // (B, T)
  const torch::Tensor old = logprobs.old.detach().to(advantage.scalar_type());          // (B, T)
  const torch::Tensor advantage_mean = aggregate(advantage, mask, LossAgg::token_mean);
  out.metrics["gopd/advantage_mean"] = advantage_mean;
  // The correctly rounded root, not MKL's processor-dependent one (kernels/adamw.h).
  out.metrics["gopd/advantage_std"] = kernels::correctly_rounded_sqrt(
      aggregate((advantage - advantage_mean).square(), mask, LossAgg::token_mean));
  out.metrics["gopd/reverse_kl_estimate"] = aggregate(old - teacher, mask, LossAgg::token_mean);
  torch::Tensor reward;  // (B, T)
  if (logprobs.reference.defined()) {
    const torch::Tensor reference = logprobs.reference.detach().to(advantage.scalar_type());
    reward = lambda_column(op, lambda, teacher) * (teacher - reference);
  } else {
    reward = teacher - old;
  }
  out.metrics["gopd/reward_mean"] = aggregate(reward, mask, LossAgg::token_mean);
  return out;
}

LossOutput gopd_full_vocab_loss(const torch::Tensor& student_logits,
                                const torch::Tensor& teacher_logits,
                                const torch::Tensor& reference_logits, double lambda,
                                double temperature, const torch::Tensor& mask, LossAgg agg,
                                kernels::Impl impl) {
  const char* op = "gopd_full_vocab_loss";
  check_rank(op, "student_logits", student_logits, 3, "(B, T, V)");
  check_mask_of(op, mask, student_logits);
  if (!reference_logits.defined()) check_lambda_without_reference(op, lambda);
  const torch::Tensor per_token =
      kernels::gopd_kl(student_logits, teacher_logits, reference_logits, lambda, temperature,
                       impl);  // (B, T) fp32
  LossOutput out;
  out.loss = aggregate(per_token, mask, agg);
  out.metrics["loss/gopd_kl"] = out.loss.detach();
  return out;
}

TopK teacher_top_k(const torch::Tensor& teacher_logits, const torch::Tensor& reference_logits,
                   int64_t k, double temperature) {
  const char* op = "teacher_top_k";
  check_rank(op, "teacher_logits", teacher_logits, 3, "(B, T, V)");
  if (reference_logits.defined())
    check_like(op, "reference_logits", reference_logits, teacher_logits);
  const int64_t batch = teacher_logits.size(0);
  const int64_t length = teacher_logits.size(1);
  const int64_t vocab = teacher_logits.size(2);
  if (k < 1 || k > vocab) {
    fail(op, "k (gopd.top_k) = " + std::to_string(k) +
                 " must be between 1 and the vocabulary "
                 "size " +
                 std::to_string(vocab));
  }
  if (!(temperature > 0.0) || !std::isfinite(temperature)) {
    fail(op, "temperature must be a finite number > 0, got " + std::to_string(temperature));
  }
  torch::NoGradGuard no_grad;
  const auto float_options = teacher_logits.options().dtype(torch::kFloat);
  TopK top;
  top.ids = torch::empty({batch, length, k}, teacher_logits.options().dtype(torch::kLong));
  top.teacher_logprobs = torch::empty({batch, length, k}, float_options);
  if (reference_logits.defined()) {
    top.reference_logprobs = torch::empty({batch, length, k}, float_options);
  }
  for (int64_t b = 0; b < batch; ++b) {
    const torch::Tensor teacher = teacher_logits[b];  // (T, V)
    // Softmax at any temperature preserves the order of the logits: rank the raw ones.
    const torch::Tensor ids = std::get<1>(teacher.topk(k, -1));  // (T, k) int64
    top.ids[b].copy_(ids);
    top.teacher_logprobs[b].copy_(gathered_logprobs(teacher, ids, temperature));
    if (reference_logits.defined()) {
      top.reference_logprobs[b].copy_(gathered_logprobs(reference_logits[b], ids, temperature));
    }
  }
  return top;
}

LossOutput gopd_top_k_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_ids,
                           const torch::Tensor& teacher_logprobs,
                           const torch::Tensor& reference_logprobs, double lambda,
                           double temperature, const torch::Tensor& mask, LossAgg agg,
                           kernels::Impl impl) {
  const char* op = "gopd_top_k_loss";
  check_rank(op, "student_logits", student_logits, 3, "(B, T, V)");
  check_mask_of(op, mask, student_logits);
  if (!reference_logprobs.defined()) check_lambda_without_reference(op, lambda);
  const torch::Tensor per_token =
      kernels::gopd_kl_topk(student_logits, teacher_ids, teacher_logprobs, reference_logprobs,
                            lambda, temperature, impl);  // (B, T) fp32
  LossOutput out;
  out.loss = aggregate(per_token, mask, agg);
  torch::NoGradGuard no_grad;
  out.metrics["loss/gopd_kl"] = out.loss.detach();
  out.metrics["gopd/top_k_teacher_mass"] =
      aggregate(teacher_logprobs.detach().to(per_token.scalar_type()).exp().sum(-1), mask,
                LossAgg::token_mean);
  return out;
}

namespace {

// The segments must tile [0, B) in order; each segment's heads have its rows.
void check_segments(const char* op, const kernels::LogitHead& student,
                    const std::vector<TeacherHeads>& teachers, const torch::Tensor& mask) {
  if (!student.defined() || student.hidden.dim() != 3) {
    fail(op, "the student head's hidden states must be (B, T, H)");
  }
  const int64_t batch = student.hidden.size(0);
  if (!mask.defined() || mask.dim() != 2 || mask.size(0) != batch ||
      mask.size(1) != student.hidden.size(1)) {
    fail(op, "mask must be (B, T) = the student's leading dimensions");
  }
  int64_t next = 0;
  for (const TeacherHeads& segment : teachers) {
    if (segment.begin != next || segment.end <= segment.begin || segment.end > batch) {
      fail(op, "teacher segments must cover the rows [0, " + std::to_string(batch) +
                   ") in order; got [" + std::to_string(segment.begin) + ", " +
                   std::to_string(segment.end) + ")");
    }
    const bool served = segment.served.ids.defined();
    if (served ? segment.served.ids.size(0) != segment.end - segment.begin
               : !segment.teacher.defined() ||
                     segment.teacher.hidden.size(0) != segment.end - segment.begin) {
      fail(op, "a segment's teacher head (or served top k) must have the segment's rows");
    }
    if (!segment.reference.defined()) check_lambda_without_reference(op, segment.lambda);
    next = segment.end;
  }
  if (next != batch) fail(op, "teacher segments cover " + std::to_string(next) + " of " +
                                  std::to_string(batch) + " rows");
}

// The student head restricted to rows [begin, end) (its hidden states keep their gradient).
kernels::LogitHead student_rows(const kernels::LogitHead& student, int64_t begin, int64_t end) {
  kernels::LogitHead part = student;
  part.hidden = student.hidden.slice(0, begin, end);
  return part;
}

}  // namespace

LossOutput gopd_full_vocab_loss(const kernels::LogitHead& student,
                                const std::vector<TeacherHeads>& teachers, double temperature,
                                const torch::Tensor& mask, LossAgg agg, kernels::Impl impl) {
  check_segments("gopd_full_vocab_loss", student, teachers, mask);
  std::vector<torch::Tensor> per_token;  // (rows, T) per segment
  for (const TeacherHeads& segment : teachers) {
    per_token.push_back(kernels::gopd_kl(student_rows(student, segment.begin, segment.end),
                                         segment.teacher, segment.reference, segment.lambda,
                                         temperature, impl));
  }
  LossOutput out;
  out.loss = aggregate(torch::cat(per_token, 0), mask, agg);
  out.metrics["loss/gopd_kl"] = out.loss.detach();
  return out;
}

TopK teacher_top_k(const kernels::LogitHead& teacher, const kernels::LogitHead& reference,
                   int64_t k, double temperature) {
  const char* op = "teacher_top_k";
  if (!teacher.defined() || teacher.hidden.dim() != 3) {
    fail(op, "the teacher head's hidden states must be (B, T, H)");
  }
  if (reference.defined() && reference.rows() != teacher.rows()) {
    fail(op, "the reference head must have the teacher's rows");
  }
  const int64_t vocab = teacher.weight.size(0);
  if (k < 1 || k > vocab) {
    fail(op, "k (gopd.top_k) = " + std::to_string(k) +
                 " must be between 1 and the vocabulary size " + std::to_string(vocab));
  }
  if (!(temperature > 0.0) || !std::isfinite(temperature)) {
    fail(op, "temperature must be a finite number > 0, got " + std::to_string(temperature));
  }
  torch::NoGradGuard no_grad;
  const int64_t rows = teacher.rows();
  const int64_t chunk = teacher.chunk_rows > 0 ? teacher.chunk_rows : std::max<int64_t>(rows, 1);
  std::vector<torch::Tensor> ids, teacher_parts, reference_parts;
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t end = std::min(rows, begin + chunk);
    const torch::Tensor logits = teacher.logits(begin, end);  // (n, V) fp32
    // Softmax at any temperature preserves the order of the logits: rank the raw ones.
    ids.push_back(std::get<1>(logits.topk(k, -1)));  // (n, k)
    teacher_parts.push_back(gathered_logprobs(logits, ids.back(), temperature));
    if (reference.defined()) {
      // The reference may sit on another device than the teacher.
      const torch::Tensor reference_logits = reference.logits(begin, end);
      reference_parts.push_back(
          gathered_logprobs(reference_logits, ids.back().to(reference_logits.device()), temperature)
              .to(logits.device()));
    }
  }
  const std::vector<int64_t> shape{teacher.hidden.size(0), teacher.hidden.size(1), k};
  TopK top;
  top.ids = torch::cat(ids, 0).view(shape);
  top.teacher_logprobs = torch::cat(teacher_parts, 0).view(shape);
  if (reference.defined()) top.reference_logprobs = torch::cat(reference_parts, 0).view(shape);
  return top;
}

TopK served_top_k(torch::Tensor ids, torch::Tensor teacher_logprobs,
                  const kernels::LogitHead& reference, double temperature) {
  TopK top;
  top.ids = std::move(ids);
  top.teacher_logprobs = std::move(teacher_logprobs);
  if (!reference.defined()) return top;
  torch::NoGradGuard no_grad;
  const int64_t rows = reference.rows();
  const int64_t k = top.ids.size(-1);
  const torch::Tensor flat = top.ids.reshape({rows, k});  // (rows, k)
  const int64_t chunk = reference.chunk_rows > 0 ? reference.chunk_rows : std::max<int64_t>(rows, 1);
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t end = std::min(rows, begin + chunk);
    const torch::Tensor logits = reference.logits(begin, end);  // (n, V) fp32
    parts.push_back(gathered_logprobs(logits, flat.slice(0, begin, end).to(logits.device()),
                                      temperature)
                        .to(top.ids.device()));
  }
  top.reference_logprobs = torch::cat(parts, 0).view(top.ids.sizes());
  return top;
}

LossOutput gopd_top_k_loss(const kernels::LogitHead& student,
                           const std::vector<TeacherHeads>& teachers, int64_t k,
                           double temperature, const torch::Tensor& mask, LossAgg agg,
                           kernels::Impl impl) {
  check_segments("gopd_top_k_loss", student, teachers, mask);
  std::vector<torch::Tensor> per_token, teacher_mass;  // (rows, T) per segment
  for (const TeacherHeads& segment : teachers) {
    const TopK top = segment.served.ids.defined()
                         ? segment.served
                         : teacher_top_k(segment.teacher, segment.reference, k, temperature);
    per_token.push_back(kernels::gopd_kl_topk(student_rows(student, segment.begin, segment.end),
                                              top.ids, top.teacher_logprobs,
                                              top.reference_logprobs, segment.lambda,
                                              temperature, impl));
    teacher_mass.push_back(top.teacher_logprobs.exp().sum(-1).to(mask.device()));
  }
  LossOutput out;
  out.loss = aggregate(torch::cat(per_token, 0), mask, agg);
  torch::NoGradGuard no_grad;
  out.metrics["loss/gopd_kl"] = out.loss.detach();
  out.metrics["gopd/top_k_teacher_mass"] =
      aggregate(torch::cat(teacher_mass, 0), mask, LossAgg::token_mean);
  return out;
}

}  // namespace gopd::objective
