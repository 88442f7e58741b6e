// The sft step: cross-entropy on the records' solutions, prompts masked (see steps.h).
#include "gopd/core/error.h"
#include "gopd/objective/sft_loss.h"
#include "gopd/scoring/sequences.h"
#include "gopd/train/steps.h"

namespace gopd::train {
namespace {

// Prompt + solution + eos; mask = the solution's tokens and eos.
scoring::TrainingSequences sft_sequences(const Job& job, const std::vector<data::Record>& records) {
  const tokenizer::Tokenizer& tokenizer = *job.tokenizer.tokenizer;
  std::vector<std::vector<int64_t>> answers;
  for (const data::Record& record : records) {
    const auto solution = record.extra.find("solution");
    const std::string text = solution != record.extra.end() && solution->is_string()
                                 ? solution->get<std::string>()
                                 : record.answer;
    if (text.empty())
      core::throw_bad_input(record.source + ": algorithm sft needs a \"solution\" or \"answer\"");
    std::vector<int64_t> answer = tokenizer.encode(" " + text, false);
    if (job.tokenizer.info.eos_id >= 0) answer.push_back(job.tokenizer.info.eos_id);
    answers.push_back(std::move(answer));
  }
  return scoring::pair_sequences(encode_prompts(job, records), answers, job.pad_id);
}

}  // namespace

void sft_step(StepContext& context, int64_t step, const std::vector<data::Record>& batch,
              nlohmann::json& line) {
  Job& job = context.job;
  const auto start = Clock::now();
  const scoring::TrainingSequences sequences = sft_sequences(job, batch).to(job.device);
  const MicroBatchLoss loss_of = [&](int64_t begin, int64_t end) {
    return objective::sft_loss(
        job.student_head(sequences, begin, end),
        sequences.targets.slice(0, begin, end), sequences.mask.slice(0, begin, end), job.agg,
        job.impl);
  };
  UpdateShape shape;  // one pass, one update: SFT has no π_old to stay close to
  shape.micro = micro_rows(job.cfg().optim, sequences.mask.size(0), sequences.input_ids.size(1));
  context.updater.update(step, sequences.mask, shape, loss_of, line);
  const double seconds = seconds_since(start);
  mark_gpu_phase(job, "update", line);
  line["perf/update_s"] = seconds;
  line["perf/update_tokens_per_s"] = sequences.mask.sum().item<double>() / std::max(seconds, 1e-9);
}

}  // namespace gopd::train
