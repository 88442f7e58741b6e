// Typed job configuration: one struct per YAML section of DESIGN.md, defaults from the
// papers (G-OPD: arXiv 2602.12125 §5 setup; GRPO/DAPO; LENS: arXiv 2601.21244), one
// `visit()` listing the fields and one `validate()` for checks that span fields.
// Sections whose features arrive later are declared in full now so configs are stable.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gopd/core/config_visitor.h"

namespace gopd::core {

inline const std::vector<std::string> kAlgorithms = {"opd", "gopd", "sft", "grpo", "lens"};
inline const std::vector<std::string> kDtypes = {"float32", "bfloat16", "float16"};
// Frozen models (teachers, reference) also take "auto": see TeacherConfig::dtype.
// A device name: cpu | cuda | cuda:N (and auto where the key allows it).
bool is_device_name(const std::string& name);
inline const std::vector<std::string> kFrozenDtypes = {"auto", "float32", "bfloat16", "float16"};

struct RunConfig {
  std::string name = "gopd-run";  // run directory = output_dir/name
  std::string output_dir = "runs";
  int64_t seed = 42;
  int64_t threads = 0;          // LibTorch intra-op threads; 0 = all cores
  // The student's device: auto (cuda:0 when a GPU is visible, else cpu) | cpu | cuda | cuda:N.
  std::string device = "auto";
  std::string log_level = "info";
  int64_t log_every = 1;  // steps between console/metrics lines
  // Multi-process jobs: a collective (or the rendezvous) that waits longer than this fails the
  // rank, so a dead rank stops the job instead of hanging it.
  double dist_timeout_s = 600;
  void visit(ConfigVisitor& visitor);
  void validate() const;
};

struct StudentConfig {
  std::string path;                  // Hugging Face model directory
  std::string dtype = "float32";     // weights; bf16 halves memory at some precision cost
  std::string chat_format = "auto";  // auto = from tokenizer_config.json
  void visit(ConfigVisitor& visitor);
  void validate() const;
};

// A model served by another process over the OpenAI/vLLM completions API (`gopd serve`, vLLM):
// scored through prompt_logprobs, at temperature 1 (the server's raw log-probs).
struct RemoteModelConfig {
  std::string url;          // http(s)://host:port; "" = the model is in this process
  std::string model;        // the served model name; "" = the only one the server lists
  double timeout_s = 600;   // retries with backoff this long, then the step fails
  std::string api_key_env;  // environment variable holding a bearer token ("" = none)
  // Score each response as soon as the rollout finishes it, while the others still decode;
  // false: all requests after the rollout (the reference path, same numbers).
  bool pipeline = true;
  void visit(ConfigVisitor& visitor);  // flat keys in the teacher's or reference's section
};

struct TeacherConfig {
  std::string path;          // a model directory, or "" with url
  RemoteModelConfig remote;  // keys url, model, timeout_s, api_key_env: a served teacher
  std::optional<double> lambda;    // overrides gopd.lambda for this teacher's records
  std::string reference;           // overrides the shared reference ("" = shared)
  // Teachers are inference-only. auto = bfloat16 on a GPU, float32 on the CPU (bfloat16
  // matmuls there are ~20x slower than float32: a demo ExOPD step scored in 4.4 s vs 0.19 s).
  std::string dtype = "auto";
  std::string device;  // cpu | cuda | cuda:N; "" = the student's (run.device)
  void visit(ConfigVisitor& visitor);
};

struct ReferenceConfig {
  // `student_init` = the student's initial weights (G-OPD default); a model directory
  // otherwise, e.g. the teacher's pre-RL base for reward correction.
  std::string path = "student_init";
  RemoteModelConfig remote;  // keys url, model, timeout_s, api_key_env: a served reference
  std::string dtype = "auto";  // as for teachers
  std::string device;          // as for teachers
  void visit(ConfigVisitor& visitor);
};

struct GopdConfig {
  std::optional<double> lambda;             // resolved: 1.25 for gopd (ExOPD), 1.0 for opd
  std::string objective = "sampled_token";  // sampled_token | full_vocab | top_k
  int64_t top_k = 64;                       // teacher tokens kept by the top_k objective
  double importance_cap = 5.0;  // C in w_t = min(exp(log π_old_train − log π_rollout), C)
  void visit(ConfigVisitor& visitor);
};

struct GrpoConfig {
  double clip_low = 0.2;      // ε_low of the PPO clipped surrogate
  double clip_high = 0.2;     // ε_high; DAPO's clip-higher uses 0.28
  double kl_beta = 0.0;       // β of the k3 KL penalty to the reference
  bool std_normalize = true;  // false = Dr. GRPO (no division by the group std)
  double epsilon = 1e-6;      // added to the group std
  // verl's dual clip: for A < 0 the surrogate is bounded by −c·A (c > 1; 0 = off)
  double clip_ratio_c = 3.0;
  double importance_cap = 5.0;  // C in w_t = min(exp(log π_old_train − log π_rollout), C)
  void visit(ConfigVisitor& visitor);
};

struct LensConfig {
  double tau = 0.5;     // purify prompts whose success rate is below τ
  double gamma = 0.05;  // fraction of prompt tokens deleted (top interference)
  std::string score =
      "initial_policy";     // π_ref of the interference score: initial_policy | reference
  int64_t max_replace = 0;  // transferred rollouts per group; 0 = as many as failed
  bool keep_failure = true;  // never replace a group's last failure (an all-correct group has A = 0)
  // crpo (1/w̃ as a row weight, the clip on π_θ/π_old: lens.h) | crpo_literal (w̃ inside the
  // clipped ratio, as written) | uniform (w̃ = 1)
  std::string weight_scheme = "crpo";
  int64_t dump_every = 10;  // steps between dumps of purified prompts to lens_dump.jsonl; 0 = off
  void visit(ConfigVisitor& visitor);
};

struct DataConfig {
  std::string train_file;  // JSONL dataset
  std::string eval_file;   // optional held-out JSONL
  bool shuffle = true;
  int64_t max_prompt_tokens = 1024;  // longer prompts are skipped with a warning
  void visit(ConfigVisitor& visitor);
};

struct RolloutConfig {
  int64_t batch_prompts = 1024;  // prompts per step (paper: 1024)
  int64_t n = 1;                 // samples per prompt (paper OPD: 1; GRPO: a group)
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;   // 0 = off
  double min_p = 0.0;  // 0 = off
  int64_t max_new_tokens = 16384;
  std::vector<std::string> stop;  // stop strings, on top of the model's eos tokens
  // Sequences decoding at once (their KV cache); with fewer than the batch's, continuous
  // batching: a finished sequence's slot goes to the next waiting sample. 0 = all at once.
  int64_t micro_batch_size = 0;
  int64_t prefill_chunk = 0;      // tokens per prefill chunk; 0 = whole prompts
  void visit(ConfigVisitor& visitor);
};

struct OptimConfig {
  double lr = 1e-5;  // paper: 1e-5 constant
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  std::string schedule = "constant";  // constant | linear | cosine
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;     // floor of linear/cosine decay, as a fraction of lr
  double grad_clip = 1.0;        // global-norm clip; 0 = off
  int64_t ppo_epochs = 1;        // passes over each batch; > 1 switches to the clipped surrogate
  int64_t mini_batches = 1;      // optimizer steps per batch; > 1 also clips
  int64_t micro_batch_size = 8;  // sequences per forward/backward (gradient accumulation)
  // > 0: micro-batches by a token budget instead: as many rows per forward/backward as fit in
  // this many padded tokens (rows × the batch's prompt + response width), at least one;
  // overrides micro_batch_size. 0 = off.
  int64_t micro_batch_tokens = 0;
  // Multi-process jobs (ZeRO-1): AdamW's state and update sharded across the ranks, gradients
  // reduce-scattered and updated weights all-gathered; off = every rank keeps the whole state.
  bool shard_optimizer = false;
  // Multi-process jobs: start each gradient bucket's all-reduce during the last backward of a
  // mini-batch, as soon as it is complete; false = all of them after backward (same sums).
  bool overlap_allreduce = true;
  void visit(ConfigVisitor& visitor);
};

struct TrainConfig {
  int64_t epochs = 3;                   // paper: 3
  int64_t max_steps = 0;                // 0 = run all epochs
  int64_t eval_every = 0;               // steps; 0 = only at the end
  int64_t save_every = 0;               // steps; 0 = only at the end
  int64_t keep_last = 2;                // checkpoints kept
  std::string loss_agg = "token_mean";  // token_mean | seq_mean_token_mean | seq_mean_token_sum
  int64_t max_nonfinite_steps = 3;      // this many skipped updates in a row stop the run
  // Recompute each decoder layer of the student in backward instead of keeping its
  // activations: a layer's input per layer is all the update keeps (HF gradient_checkpointing).
  bool activation_checkpointing = false;
  // Positions whose logits are formed at once: every objective and scoring pass takes logits
  // from the final hidden states this many rows (tokens) at a time, never a whole (tokens ×
  // vocabulary) tensor; 0 = all at once. At V = 151,936, 2048 rows are 1.2 GB of fp32 logits.
  int64_t lm_head_chunk_tokens = 2048;
  // Compute precision of the student: bf16 = autocast (bf16 matmuls in forward and backward,
  // fp32 master weights, AdamW state, log-softmax and loss); fp32 = none; auto = bf16 on a GPU,
  // fp32 on the CPU (where bf16 matmuls are slower than fp32).
  std::string precision = "auto";
  // Dtype of the saved model.safetensors: auto = student.dtype (the weights as trained).
  std::string save_dtype = "auto";
  // Multi-process jobs: every this many steps the ranks compare a hash of their weights and
  // stop with an error naming the ranks that drifted apart; 0 = never.
  int64_t check_sync_every = 50;
  void visit(ConfigVisitor& visitor);
};

struct CodeRewardConfig {
  std::string python = "python3";
  double timeout_s = 5.0;     // wall clock per test
  int64_t cpu_seconds = 5;    // CPU time per test (RLIMIT_CPU)
  int64_t memory_mb = 512;    // address-space limit
  int64_t file_size_mb = 16;  // largest file the program may write (RLIMIT_FSIZE)
  int64_t max_output_kb = 64;
  int64_t max_processes = 16;
  bool all_or_nothing = true;      // false = reward is the fraction of tests passed
  bool allow_unsandboxed = false;  // run without bubblewrap (loud warning)
  // All of a response's test cases in one sandbox (one bubblewrap start), each case still its
  // own process with the limits above and a clean sandbox; false = one sandbox per case (the
  // reference path).
  bool batch_cases = true;
  // How the sandbox's process starts: vfork (no copy of the trainer's page tables) or fork,
  // the reference path, ~60 ms per start from a 2 GB process.
  std::string spawn = "vfork";
  void visit(ConfigVisitor& visitor);
};

struct RewardConfig {
  std::string type = "math";   // math | code | task
  double format_weight = 0.0;  // weight of the optional format reward
  int64_t workers = 0;         // verifier threads; 0 = all cores
  CodeRewardConfig code;
  void visit(ConfigVisitor& visitor);
};

struct EvalConfig {
  std::string data;          // "" = data.eval_file
  int64_t samples = 1;       // K of avg@K / pass@K
  double temperature = 0.0;  // 0 = greedy
  double top_p = 1.0;
  int64_t max_new_tokens = 1024;
  void visit(ConfigVisitor& visitor);
};

struct KernelsConfig {
  std::string impl = "fused";  // fused | reference
  // Attention of every model: sdpa (at::scaled_dot_product_attention: flash / memory-efficient
  // kernels) | explicit (scores and softmax as plain tensors, the reference) | auto = sdpa on
  // a GPU, explicit on the CPU.
  std::string attention = "auto";
  void visit(ConfigVisitor& visitor);
};

struct Config {
  std::string algorithm = "gopd";
  RunConfig run;
  StudentConfig student;
  std::map<std::string, TeacherConfig> teachers;
  ReferenceConfig reference;
  GopdConfig gopd;
  GrpoConfig grpo;
  LensConfig lens;
  DataConfig data;
  RolloutConfig rollout;
  OptimConfig optim;
  TrainConfig train;
  RewardConfig reward;
  EvalConfig eval;
  KernelsConfig kernels;

  void visit(ConfigVisitor& visitor);
  // Fills values whose default depends on other fields (gopd.lambda).
  void resolve();
  // Cross-field checks; throws ConfigIssue naming the key path.
  void validate() const;
};

}  // namespace gopd::core
