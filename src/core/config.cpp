// The config schema: field lists (visit), dependent defaults (resolve) and cross-field
// checks (validate). Per-field type and range checks happen in the reader, driven by the
// rules given here.
#include "gopd/core/config.h"

#include <cmath>
#include <cstdio>

#include "gopd/core/logging.h"

namespace gopd::core {
namespace {

std::string format_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

}  // namespace

bool NumberRule::allows(double value) const {
  if (!std::isfinite(value)) return false;
  if (min_inclusive ? value < min : value <= min) return false;
  if (max_inclusive ? value > max : value >= max) return false;
  return true;
}

std::string NumberRule::describe(bool integer) const {
  const std::string noun = integer ? "an integer" : "a number";
  const bool has_min = std::isfinite(min);
  const bool has_max = std::isfinite(max);
  if (has_min && has_max) {
    return noun + " in " + (min_inclusive ? "[" : "(") + format_number(min) + ", " +
           format_number(max) + (max_inclusive ? "]" : ")");
  }
  if (has_min) {
    if (min == 0.0 && !min_inclusive) return integer ? "a positive integer" : "a positive number";
    return noun + (min_inclusive ? " >= " : " > ") + format_number(min);
  }
  if (has_max) return noun + (max_inclusive ? " <= " : " < ") + format_number(max);
  return noun;
}

void RunConfig::visit(ConfigVisitor& v) {
  v.field("name", name, StringRule::non_empty());
  v.field("output_dir", output_dir, StringRule::non_empty());
  v.field("seed", seed, NumberRule::non_negative());
  v.field("threads", threads, NumberRule::non_negative());
  v.field("device", device, StringRule::non_empty());
  v.field("log_level", log_level,
          StringRule::one_of({std::begin(kLogLevels), std::end(kLogLevels)}));
  v.field("log_every", log_every, NumberRule::at_least(1));
  v.field("dist_timeout_s", dist_timeout_s, NumberRule::positive());
}

bool is_device_name(const std::string& name) {
  if (name == "cpu" || name == "cuda") return true;
  if (name.rfind("cuda:", 0) != 0 || name.size() == 5 || name.size() > 8) return false;
  return name.find_first_not_of("0123456789", 5) == std::string::npos;
}

void RunConfig::validate() const {
  if (device != "auto" && !is_device_name(device)) {
    config_issue("run.device", "expected auto, cpu, cuda or cuda:N, got \"" + device + "\"");
  }
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    config_issue("run.name", "expected a plain directory name (no '/'), got \"" + name + "\"");
  }
}

void StudentConfig::visit(ConfigVisitor& v) {
  v.field("path", path, StringRule::any());
  v.field("dtype", dtype, StringRule::one_of(kDtypes));
  v.field("chat_format", chat_format,
          StringRule::one_of({"auto", "qwen3", "qwen3_no_think", "chatml", "llama3", "none"}));
}

void RemoteModelConfig::visit(ConfigVisitor& v) {
  v.field("url", url, StringRule::any());
  v.field("model", model, StringRule::any());
  v.field("timeout_s", timeout_s, NumberRule::positive());
  v.field("api_key_env", api_key_env, StringRule::any());
  v.field("pipeline", pipeline);
}

void TeacherConfig::visit(ConfigVisitor& v) {
  v.field("path", path, StringRule::any());
  remote.visit(v);
  v.field("lambda", lambda, NumberRule::non_negative());
  v.field("reference", reference, StringRule::any());
  v.field("dtype", dtype, StringRule::one_of(kFrozenDtypes));
  v.field("device", device, StringRule::any());
}

void ReferenceConfig::visit(ConfigVisitor& v) {
  v.field("path", path, StringRule::non_empty());
  remote.visit(v);
  v.field("dtype", dtype, StringRule::one_of(kFrozenDtypes));
  v.field("device", device, StringRule::any());
}

void GopdConfig::visit(ConfigVisitor& v) {
  v.field("lambda", lambda, NumberRule::non_negative());
  v.field("objective", objective, StringRule::one_of({"sampled_token", "full_vocab", "top_k"}));
  v.field("top_k", top_k, NumberRule::at_least(1));
  v.field("importance_cap", importance_cap, NumberRule::at_least(1));
}

void GrpoConfig::visit(ConfigVisitor& v) {
  v.field("clip_low", clip_low, NumberRule::range(0, 1, false, false));
  v.field("clip_high", clip_high, NumberRule::positive());
  v.field("kl_beta", kl_beta, NumberRule::non_negative());
  v.field("std_normalize", std_normalize);
  v.field("epsilon", epsilon, NumberRule::positive());
  v.field("clip_ratio_c", clip_ratio_c, NumberRule::non_negative());
  v.field("importance_cap", importance_cap, NumberRule::at_least(1));
}

void LensConfig::visit(ConfigVisitor& v) {
  v.field("tau", tau, NumberRule::range(0, 1, false, true));
  v.field("gamma", gamma, NumberRule::range(0, 1, false, false));
  v.field("score", score, StringRule::one_of({"initial_policy", "reference"}));
  v.field("max_replace", max_replace, NumberRule::non_negative());
  v.field("keep_failure", keep_failure);
  v.field("weight_scheme", weight_scheme, StringRule::one_of({"crpo", "crpo_literal", "uniform"}));
  v.field("dump_every", dump_every, NumberRule::non_negative());
}

void DataConfig::visit(ConfigVisitor& v) {
  v.field("train_file", train_file, StringRule::any());
  v.field("eval_file", eval_file, StringRule::any());
  v.field("shuffle", shuffle);
  v.field("max_prompt_tokens", max_prompt_tokens, NumberRule::at_least(1));
}

void RolloutConfig::visit(ConfigVisitor& v) {
  v.field("batch_prompts", batch_prompts, NumberRule::at_least(1));
  v.field("n", n, NumberRule::at_least(1));
  v.field("temperature", temperature, NumberRule::non_negative());
  v.field("top_p", top_p, NumberRule::range(0, 1, false, true));
  v.field("top_k", top_k, NumberRule::non_negative());
  v.field("min_p", min_p, NumberRule::range(0, 1, true, false));
  v.field("max_new_tokens", max_new_tokens, NumberRule::at_least(1));
  v.field("stop", stop);
  v.field("micro_batch_size", micro_batch_size, NumberRule::non_negative());
  v.field("prefill_chunk", prefill_chunk, NumberRule::non_negative());
}

void OptimConfig::visit(ConfigVisitor& v) {
  v.field("lr", lr, NumberRule::positive());
  v.field("beta1", beta1, NumberRule::range(0, 1, true, false));
  v.field("beta2", beta2, NumberRule::range(0, 1, true, false));
  v.field("eps", eps, NumberRule::positive());
  v.field("weight_decay", weight_decay, NumberRule::non_negative());
  v.field("schedule", schedule, StringRule::one_of({"constant", "linear", "cosine"}));
  v.field("warmup_steps", warmup_steps, NumberRule::non_negative());
  v.field("min_lr_ratio", min_lr_ratio, NumberRule::range(0, 1, true, true));
  v.field("grad_clip", grad_clip, NumberRule::non_negative());
  v.field("ppo_epochs", ppo_epochs, NumberRule::at_least(1));
  v.field("mini_batches", mini_batches, NumberRule::at_least(1));
  v.field("micro_batch_size", micro_batch_size, NumberRule::at_least(1));
  v.field("micro_batch_tokens", micro_batch_tokens, NumberRule::non_negative());
  v.field("shard_optimizer", shard_optimizer);
  v.field("overlap_allreduce", overlap_allreduce);
}

void TrainConfig::visit(ConfigVisitor& v) {
  v.field("epochs", epochs, NumberRule::at_least(1));
  v.field("max_steps", max_steps, NumberRule::non_negative());
  v.field("eval_every", eval_every, NumberRule::non_negative());
  v.field("save_every", save_every, NumberRule::non_negative());
  v.field("keep_last", keep_last, NumberRule::at_least(1));
  v.field("loss_agg", loss_agg,
          StringRule::one_of({"token_mean", "seq_mean_token_mean", "seq_mean_token_sum"}));
  v.field("max_nonfinite_steps", max_nonfinite_steps, NumberRule::at_least(1));
  v.field("activation_checkpointing", activation_checkpointing);
  v.field("lm_head_chunk_tokens", lm_head_chunk_tokens, NumberRule::non_negative());
  v.field("precision", precision, StringRule::one_of({"auto", "bf16", "fp32"}));
  v.field("save_dtype", save_dtype, StringRule::one_of({"auto", "float32", "bfloat16", "float16"}));
  v.field("check_sync_every", check_sync_every, NumberRule::non_negative());
}

void CodeRewardConfig::visit(ConfigVisitor& v) {
  v.field("python", python, StringRule::non_empty());
  v.field("timeout_s", timeout_s, NumberRule::positive());
  v.field("cpu_seconds", cpu_seconds, NumberRule::at_least(1));
  v.field("memory_mb", memory_mb, NumberRule::at_least(16));
  v.field("file_size_mb", file_size_mb, NumberRule::at_least(1));
  v.field("max_output_kb", max_output_kb, NumberRule::at_least(1));
  v.field("max_processes", max_processes, NumberRule::at_least(1));
  v.field("all_or_nothing", all_or_nothing);
  v.field("allow_unsandboxed", allow_unsandboxed);
  v.field("batch_cases", batch_cases);
  v.field("spawn", spawn, StringRule::one_of({"vfork", "fork"}));
}

void RewardConfig::visit(ConfigVisitor& v) {
  v.field("type", type, StringRule::one_of({"math", "code", "task"}));
  v.field("format_weight", format_weight, NumberRule::range(0, 1, true, true));
  v.field("workers", workers, NumberRule::non_negative());
  visit_section(v, "code", code);
}

void EvalConfig::visit(ConfigVisitor& v) {
  v.field("data", data, StringRule::any());
  v.field("samples", samples, NumberRule::at_least(1));
  v.field("temperature", temperature, NumberRule::non_negative());
  v.field("top_p", top_p, NumberRule::range(0, 1, false, true));
  v.field("max_new_tokens", max_new_tokens, NumberRule::at_least(1));
}

void KernelsConfig::visit(ConfigVisitor& v) {
  v.field("impl", impl, StringRule::one_of({"fused", "reference"}));
  v.field("attention", attention, StringRule::one_of({"auto", "sdpa", "explicit"}));
}

void Config::visit(ConfigVisitor& v) {
  v.field("algorithm", algorithm, StringRule::one_of(kAlgorithms));
  visit_section(v, "run", run);
  visit_section(v, "student", student);
  v.teachers("teachers", teachers);
  visit_section(v, "reference", reference);
  visit_section(v, "gopd", gopd);
  visit_section(v, "grpo", grpo);
  visit_section(v, "lens", lens);
  visit_section(v, "data", data);
  visit_section(v, "rollout", rollout);
  visit_section(v, "optim", optim);
  visit_section(v, "train", train);
  visit_section(v, "reward", reward);
  visit_section(v, "eval", eval);
  visit_section(v, "kernels", kernels);
}

void Config::resolve() {
  // G-OPD: λ = 1 is standard OPD; the paper's ExOPD default is λ = 1.25.
  if (!gopd.lambda) gopd.lambda = algorithm == "opd" ? 1.0 : 1.25;
}

void Config::validate() const {
  run.validate();
  const bool distills = algorithm == "opd" || algorithm == "gopd";
  const bool group_rl = algorithm == "grpo" || algorithm == "lens";
  if (student.path.empty()) {
    config_issue("student.path", "required: the student model directory (Hugging Face layout)");
  }
  if (data.train_file.empty()) config_issue("data.train_file", "required: a JSONL dataset");
  if (algorithm == "opd" && gopd.lambda && *gopd.lambda != 1.0) {
    config_issue("gopd.lambda",
                 "algorithm opd is G-OPD with lambda = 1; use algorithm: gopd "
                 "for lambda = " +
                     format_number(*gopd.lambda));
  }
  bool any_remote = !reference.remote.url.empty();
  const auto check_url = [](const std::string& key, const std::string& url) {
    if (!url.empty() && url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      config_issue(key, "expected an http:// or https:// address, got \"" + url + "\"");
    }
  };
  check_url("reference.url", reference.remote.url);
  for (const auto& [name, teacher] : teachers) {
    const std::string key = "teachers." + name;
    if (teacher.path.empty() == teacher.remote.url.empty()) {
      config_issue(key, "give exactly one of path (a model directory) or url (a served model)");
    }
    check_url(key + ".url", teacher.remote.url);
    const bool remote_reference = teacher.reference.rfind("http://", 0) == 0 ||
                                  teacher.reference.rfind("https://", 0) == 0;
    any_remote = any_remote || !teacher.remote.url.empty() || remote_reference;
    if (!teacher.remote.url.empty() && !teacher.device.empty()) {
      config_issue(key + ".device", "a served teacher (url) runs where its server runs");
    }
  }
  if (!reference.remote.url.empty() && !distills) {
    config_issue("reference.url", "a served reference scores distillation (opd, gopd) only; "
                                  "algorithm " + algorithm + " needs reference.path");
  }
  if (any_remote && distills) {
    if (gopd.objective == "full_vocab") {
      config_issue("gopd.objective",
                   "full_vocab needs every teacher's logits in this process; a served teacher or "
                   "reference (url) gives log-probs: use sampled_token or top_k");
    }
    if (rollout.temperature != 1.0) {
      config_issue("rollout.temperature",
                   "served teachers and references (url) give log-probs at temperature 1 (the "
                   "server's raw logits), so the rollout must sample at 1; got " +
                       format_number(rollout.temperature));
    }
  }
  for (const auto& [name, teacher] : teachers) {
    if (!teacher.device.empty() && !is_device_name(teacher.device)) {
      config_issue("teachers." + name + ".device",
                   "expected cpu, cuda or cuda:N (or leave it out: the student's), got \"" +
                       teacher.device + "\"");
    }
  }
  if (!reference.device.empty() && !is_device_name(reference.device)) {
    config_issue("reference.device",
                 "expected cpu, cuda or cuda:N (or leave it out: the student's), got \"" +
                     reference.device + "\"");
  }
  if (distills && teachers.empty()) {
    config_issue("teachers", "algorithm " + algorithm + " needs at least one teacher");
  }
  if (algorithm == "opd") {
    for (const auto& [name, teacher] : teachers) {
      if (teacher.lambda && *teacher.lambda != 1.0) {
        config_issue("teachers." + name + ".lambda",
                     "algorithm opd fixes lambda = 1; use algorithm: gopd for per-teacher lambda");
      }
    }
  }
  if (group_rl && rollout.n < 2) {
    config_issue("rollout.n", "algorithm " + algorithm +
                                  " needs a group of at least 2 rollouts per prompt, got " +
                                  std::to_string(rollout.n));
  }
  if (grpo.clip_ratio_c != 0.0 && grpo.clip_ratio_c <= 1.0) {
    config_issue("grpo.clip_ratio_c", "the dual clip bound must be > 1 (verl's default is 3), or 0 "
                                      "to turn it off; got " + format_number(grpo.clip_ratio_c));
  }
  if (algorithm != "sft" && rollout.temperature <= 0.0) {
    config_issue("rollout.temperature",
                 "training samples on policy and scores log-probs at the rollout temperature, which "
                 "must be > 0 (greedy decoding is for gopd eval / gopd generate); got " +
                     format_number(rollout.temperature));
  }
  if (gopd.objective == "top_k" && gopd.top_k < 1) {
    config_issue("gopd.top_k", "the top_k objective needs top_k >= 1");
  }
  if (optim.mini_batches > rollout.batch_prompts * rollout.n) {
    config_issue("optim.mini_batches", "expected at most rollout.batch_prompts * rollout.n = " +
                                           std::to_string(rollout.batch_prompts * rollout.n) +
                                           " mini-batches, got " +
                                           std::to_string(optim.mini_batches));
  }
}

}  // namespace gopd::core
