// The chunked lm_head + token-op path (see logit_head.h). One autograd function, ChunkedHead,
// carries every op: forward runs the op chunk by chunk without a graph and keeps only the
// hidden states and the weight; backward recomputes each chunk's logits with a graph, asks
// autograd for the chunk's gradients of hidden and weight, and sums the weight's in fp32.
#include "gopd/kernels/logit_head.h"

#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace gopd::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct RowOpHolder : torch::CustomClassHolder {
  explicit RowOpHolder(RowOp op) : op(std::move(op)) {}
  RowOp op;
};

torch::Tensor chunk_logits(const torch::Tensor& hidden_rows, const torch::Tensor& weight,
                           int64_t begin, int64_t end) {
  const torch::Tensor h = hidden_rows.slice(0, begin, end);
  return torch::matmul(h.to(weight.scalar_type()), weight.t()).to(torch::kFloat);
}

class ChunkedHead : public torch::autograd::Function<ChunkedHead> {
 public:
  // hidden_rows (N, H); weight (V, H) in its own dtype; outputs: the op's, concatenated (N).
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& hidden_rows,
                               const torch::Tensor& weight, int64_t chunk_rows,
                               int64_t compute_dtype, c10::intrusive_ptr<RowOpHolder> holder) {
    const auto dtype = static_cast<torch::ScalarType>(compute_dtype);
    ctx->save_for_backward({hidden_rows, weight});
    ctx->saved_data["chunk"] = chunk_rows;
    ctx->saved_data["dtype"] = compute_dtype;
    ctx->saved_data["op"] = c10::IValue::make_capsule(holder);
    torch::NoGradGuard no_grad;
    const torch::Tensor w = weight.to(dtype);
    const int64_t rows = hidden_rows.size(0);
    std::vector<std::vector<torch::Tensor>> parts;
    for (int64_t begin = 0; begin < rows; begin += chunk_rows) {
      const int64_t end = std::min(rows, begin + chunk_rows);
      std::vector<torch::Tensor> out =
          holder->op(chunk_logits(hidden_rows, w, begin, end), begin, end);
      for (size_t i = 0; i < out.size(); ++i) {
        if (parts.size() <= i) parts.emplace_back();
        parts[i].push_back(out[i].detach());
      }
    }
    variable_list outputs;
    for (auto& part : parts) outputs.push_back(torch::cat(part, 0));
    for (size_t i = 1; i < outputs.size(); ++i) ctx->mark_non_differentiable({outputs[i]});
    return outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& hidden_rows = saved[0];
    const torch::Tensor& weight = saved[1];
    const int64_t chunk_rows = ctx->saved_data["chunk"].toInt();
    const auto dtype = static_cast<torch::ScalarType>(ctx->saved_data["dtype"].toInt());
    const auto holder =
        c10::static_intrusive_pointer_cast<RowOpHolder>(ctx->saved_data["op"].toCapsule());
    const torch::Tensor& grad_out = grads[0];  // (N)
    const bool need_hidden = hidden_rows.requires_grad();
    const bool need_weight = weight.requires_grad();
    if (!grad_out.defined() || (!need_hidden && !need_weight)) {
      return {torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
    torch::AutoGradMode enable_grad(true);
    // The cast weight is a leaf of its own: each chunk's gradient comes back in the compute
    // dtype and is summed in fp32.
    const torch::Tensor w = weight.detach().to(dtype).requires_grad_(need_weight);
    const int64_t rows = hidden_rows.size(0);
    std::vector<torch::Tensor> hidden_grads;
    torch::Tensor weight_grad;
    for (int64_t begin = 0; begin < rows; begin += chunk_rows) {
      const int64_t end = std::min(rows, begin + chunk_rows);
      const torch::Tensor h = hidden_rows.slice(0, begin, end).detach().requires_grad_(need_hidden);
      const torch::Tensor out = holder->op(chunk_logits(h, w, 0, end - begin), begin, end)[0];
      std::vector<torch::Tensor> inputs;
      if (need_hidden) inputs.push_back(h);
      if (need_weight) inputs.push_back(w);
      const variable_list chunk_grads =
          torch::autograd::grad({out}, inputs, {grad_out.slice(0, begin, end)},
                                /*retain_graph=*/false, /*create_graph=*/false,
                                /*allow_unused=*/true);
      size_t next = 0;
      if (need_hidden) {
        const torch::Tensor g = chunk_grads[next++];
        hidden_grads.push_back(g.defined() ? g.to(hidden_rows.scalar_type())
                                           : torch::zeros_like(h));
      }
      if (need_weight && chunk_grads[next].defined()) {
        const torch::Tensor g = chunk_grads[next].to(torch::kFloat);
        weight_grad = weight_grad.defined() ? weight_grad.add_(g) : g.clone();
      }
    }
    torch::Tensor hidden_grad = need_hidden ? torch::cat(hidden_grads, 0) : torch::Tensor();
    if (need_weight) {
      weight_grad =
          weight_grad.defined() ? weight_grad.to(weight.scalar_type()) : torch::zeros_like(weight);
    }
    return {hidden_grad, weight_grad, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

void check_head(const char* op, const char* name, const LogitHead& head) {
  if (!head.hidden.defined() || !head.weight.defined()) {
    throw std::invalid_argument(std::string(op) + ": " + name + " head is undefined");
  }
  if (head.weight.dim() != 2 || head.hidden.dim() < 1 ||
      head.hidden.size(-1) != head.weight.size(1)) {
    std::ostringstream out;
    out << op << ": " << name << " head's hidden states " << head.hidden.sizes()
        << " do not match its weight " << head.weight.sizes() << " (V, H)";
    throw std::invalid_argument(out.str());
  }
}

std::vector<int64_t> leading_dims(const LogitHead& head) {
  const auto sizes = head.hidden.sizes();
  return std::vector<int64_t>(sizes.begin(), sizes.end() - 1);
}

}  // namespace

// Chunked through ChunkedHead, or plainly (all logits at once, ordinary autograd).
std::vector<torch::Tensor> map_rows(const LogitHead& head, RowOp op) {
  const int64_t rows = head.rows();
  const torch::Tensor hidden_rows = head.hidden.reshape({rows, head.hidden.size(-1)});
  std::vector<torch::Tensor> outputs;
  if (head.chunk_rows <= 0 || head.chunk_rows >= rows) {
    outputs = op(chunk_logits(hidden_rows, head.weight.to(head.compute_dtype), 0, rows), 0, rows);
    for (size_t i = 1; i < outputs.size(); ++i) outputs[i] = outputs[i].detach();
  } else {
    outputs = ChunkedHead::apply(hidden_rows, head.weight, head.chunk_rows,
                                 static_cast<int64_t>(head.compute_dtype),
                                 c10::make_intrusive<RowOpHolder>(std::move(op)));
  }
  const std::vector<int64_t> shape = leading_dims(head);
  for (auto& output : outputs) output = output.view(shape);
  return outputs;
}

int64_t LogitHead::rows() const {
  int64_t rows = 1;
  for (int64_t i = 0; i + 1 < hidden.dim(); ++i) rows *= hidden.size(i);
  return rows;
}

torch::Tensor LogitHead::logits(int64_t begin, int64_t end) const {
  const torch::Tensor rows = hidden.reshape({this->rows(), hidden.size(-1)});
  return chunk_logits(rows, weight.to(compute_dtype), begin, end);
}

torch::Tensor LogitHead::all_logits() const {
  std::vector<int64_t> shape = leading_dims(*this);
  shape.push_back(weight.size(0));
  return logits(0, rows()).view(shape);
}

LogitHead frozen_head(const torch::Tensor& hidden, const torch::Tensor& weight,
                      torch::ScalarType compute_dtype, int64_t chunk_rows) {
  LogitHead head;
  // Contiguous once here, so that logits() of each chunk reads a view instead of copying the
  // (rows, T, H) hidden states again (a response slice of the sequence is not contiguous).
  head.hidden = hidden.detach().contiguous();
  head.weight = weight.detach();
  head.compute_dtype = compute_dtype;
  head.chunk_rows = chunk_rows;
  return head;
}

TokenLogprobs token_logprobs(const LogitHead& head, const torch::Tensor& tokens, double temperature,
                             bool with_entropy, Impl impl) {
  check_head("token_logprobs", "student", head);
  const torch::Tensor flat_tokens = tokens.reshape({head.rows()}).to(head.hidden.device());
  std::vector<torch::Tensor> out =
      map_rows(head, [=](const torch::Tensor& logits, int64_t begin, int64_t end) {
        TokenLogprobs part = kernels::token_logprobs(logits, flat_tokens.slice(0, begin, end),
                                                     temperature, with_entropy, impl);
        std::vector<torch::Tensor> result{part.logprobs};
        if (with_entropy) result.push_back(part.entropy);
        return result;
      });
  TokenLogprobs result;
  result.logprobs = out[0];
  if (with_entropy) result.entropy = out[1];
  return result;
}

torch::Tensor gopd_kl(const LogitHead& student, const LogitHead& teacher,
                      const LogitHead& reference, double lambda, double temperature, Impl impl) {
  check_head("gopd_kl", "student", student);
  check_head("gopd_kl", "teacher", teacher);
  if (reference.defined()) check_head("gopd_kl", "reference", reference);
  if (teacher.rows() != student.rows() ||
      (reference.defined() && reference.rows() != student.rows())) {
    throw std::invalid_argument(
        "gopd_kl: teacher and reference heads must have the student's rows");
  }
  const LogitHead frozen_teacher =
      frozen_head(teacher.hidden, teacher.weight, teacher.compute_dtype, 0);
  const LogitHead frozen_reference =
      reference.defined()
          ? frozen_head(reference.hidden, reference.weight, reference.compute_dtype, 0)
          : LogitHead{};
  return map_rows(student, [=](const torch::Tensor& logits, int64_t begin, int64_t end) {
    torch::Tensor teacher_logits, reference_logits;
    {
      torch::NoGradGuard no_grad;
      // A teacher or reference on another device hands over one chunk of logits at a time.
      teacher_logits = frozen_teacher.logits(begin, end).to(logits.device());
      if (frozen_reference.defined()) {
        reference_logits = frozen_reference.logits(begin, end).to(logits.device());
      }
    }
    return std::vector<torch::Tensor>{
        kernels::gopd_kl(logits, teacher_logits, reference_logits, lambda, temperature, impl)};
  })[0];
}

torch::Tensor gopd_kl_topk(const LogitHead& student, const torch::Tensor& teacher_ids,
                           const torch::Tensor& teacher_logprobs,
                           const torch::Tensor& reference_logprobs, double lambda,
                           double temperature, Impl impl) {
  check_head("gopd_kl_topk", "student", student);
  const int64_t rows = student.rows();
  // The teacher's top-k may come from another device: everything on the student's.
  const torch::Device device = student.hidden.device();
  const torch::Tensor ids = teacher_ids.reshape({rows, teacher_ids.size(-1)}).to(device);
  const torch::Tensor teacher =
      teacher_logprobs.reshape({rows, teacher_logprobs.size(-1)}).to(device);
  const torch::Tensor reference =
      reference_logprobs.defined()
          ? reference_logprobs.reshape({rows, reference_logprobs.size(-1)}).to(device)
          : torch::Tensor();
  return map_rows(student, [=](const torch::Tensor& logits, int64_t begin, int64_t end) {
    return std::vector<torch::Tensor>{kernels::gopd_kl_topk(
        logits, ids.slice(0, begin, end), teacher.slice(0, begin, end),
        reference.defined() ? reference.slice(0, begin, end) : torch::Tensor(), lambda, temperature,
        impl)};
  })[0];
}

}  // namespace gopd::kernels
