#!/usr/bin/env python3
"""The TRL side of scripts/bench/peers.sh: the trainer a researcher would run instead of gopd,
configured to gopd's settings, on the same model directories and data. One JSON line on stdout.

  trl_peer.py distill --student DIR --teacher DIR --data FILE.jsonl --prompts P --max-new-tokens T
                      --lr LR --steps N --warmup W --threads K
      TRL's DistillationTrainer (on-policy every step, one sample per prompt, beta = 1: the
      reverse KL(student || teacher) over the full vocabulary, per generated token), against
      gopd `opd` with gopd.objective full_vocab.
  trl_peer.py grpo --student DIR --data FILE.jsonl --prompts P --group G --max-new-tokens T ...
      TRL's GRPOTrainer (no KL term, one update per batch, loss_type dapo = gopd's token_mean
      aggregation, group-std scaling = grpo.std_normalize), the reward = gopd's math verifier
      (`gopd reward --type math` on the batch's responses), against gopd `grpo`.

Settings mapped (TRL field = gopd key): per_device_train_batch_size = rollout.batch_prompts
(distill) or batch_prompts × n (grpo), num_generations = rollout.n, max_completion_length =
rollout.max_new_tokens, temperature 1 / top_p 1 / top_k 0 = rollout.temperature/top_p/top_k,
learning_rate = optim.lr, lr_scheduler_type constant + warmup_steps 0 = optim.schedule constant,
adam betas/eps/weight_decay = optim.beta1/beta2/eps/weight_decay, max_grad_norm = optim.grad_clip,
float32 everywhere (bf16 False; TRL's default is bf16 autocast), gradient_checkpointing False
(TRL's default is on), no dropout, no shuffling, one process, torch threads = run.threads.

Reported: mean seconds per optimizer step over the steps after the warm-up (callback
on_step_begin → on_step_end: generation, scoring, backward and AdamW), generated tokens per
second, peak RSS of the process (ru_maxrss), and the per-step loss (distill: the reverse KL per
generated token, the quantity gopd logs as loss/gopd_kl).
"""
import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["distill", "grpo"])
    parser.add_argument("--student", required=True)
    parser.add_argument("--teacher")
    parser.add_argument("--data", required=True)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gopd", default="build/bin/gopd", help="for the math verifier (grpo)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import datasets
    import transformers
    import trl

    class StepTimer(transformers.TrainerCallback):
        def __init__(self):
            self.starts, self.seconds = [], []

        def on_step_begin(self, *_, **__):
            self.starts.append(time.perf_counter())

        def on_step_end(self, *_, **__):
            self.seconds.append(time.perf_counter() - self.starts[-1])

    records = [json.loads(line) for line in open(args.data, encoding="utf-8") if line.strip()]
    total_steps = args.steps + args.warmup
    needed = args.prompts * total_steps
    if len(records) < needed:
        print(f"trl_peer: {args.data} has {len(records)} records, {needed} needed", file=sys.stderr)
        return 2
    rows = {"prompt": [r["prompt"] for r in records[:needed]],
            "answer": [str(r.get("answer", "")) for r in records[:needed]]}
    dataset = datasets.Dataset.from_dict(rows)
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.student)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    student = transformers.AutoModelForCausalLM.from_pretrained(args.student, dtype=torch.float32)
    common = dict(output_dir=tempfile.mkdtemp(prefix="trl_peer_"), use_cpu=True, bf16=False,
                  fp16=False, gradient_checkpointing=False, gradient_accumulation_steps=1,
                  max_steps=total_steps, learning_rate=args.lr, lr_scheduler_type="constant",
                  warmup_steps=0, weight_decay=args.weight_decay, optim="adamw_torch",
                  adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
                  max_grad_norm=args.grad_clip, temperature=1.0, top_p=1.0, top_k=0,
                  max_completion_length=args.max_new_tokens, shuffle_dataset=False,
                  dataloader_num_workers=0, logging_steps=1, save_strategy="no",
                  report_to="none", seed=args.seed, disable_dropout=True,
                  disable_tqdm=True)
    timer = StepTimer()
    reward_seconds = []
    if args.mode == "distill":
        teacher = transformers.AutoModelForCausalLM.from_pretrained(args.teacher, dtype=torch.float32)
        config = trl.DistillationConfig(per_device_train_batch_size=args.prompts, beta=1.0, **common)
        trainer = trl.DistillationTrainer(model=student, teacher_model=teacher, args=config,
                                          train_dataset=dataset, processing_class=tokenizer,
                                          callbacks=[timer])
    else:
        def math_reward(prompts, completions, answer, **_):
            start = time.perf_counter()
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
                for completion, gold in zip(completions, answer):
                    handle.write(json.dumps({"response": completion, "answer": gold}) + "\n")
            scored = subprocess.run([args.gopd, "reward", "--type", "math", "--input", handle.name],
                                    check=True, capture_output=True, text=True).stdout
            reward_seconds.append(time.perf_counter() - start)
            return [float(json.loads(line)["reward"]) for line in scored.splitlines() if line.strip()]

        config = trl.GRPOConfig(per_device_train_batch_size=args.prompts * args.group,
                                num_generations=args.group, beta=0.0, num_iterations=1,
                                loss_type="dapo", scale_rewards="group", **common)
        # GRPO's dataset rows are prompts; each batch of P × G completions draws P of them
        trainer = trl.GRPOTrainer(model=student, reward_funcs=math_reward, args=config,
                                  train_dataset=dataset, processing_class=tokenizer,
                                  callbacks=[timer])
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs to stdout
        trainer.train()
    measured = timer.seconds[args.warmup:]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    lengths = [entry.get("completions/mean_length") for entry in trainer.state.log_history
               if "completions/mean_length" in entry]
    line = {"peer": f"trl {trl.__version__} "
                    + ("DistillationTrainer" if args.mode == "distill" else "GRPOTrainer"),
            "transformers": transformers.__version__, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "steps": len(measured),
            "step_s": round(statistics.mean(measured), 4),
            "step_s_all": [round(s, 4) for s in timer.seconds],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "loss": [round(x, 5) for x in losses]}
    if lengths:
        length = statistics.mean(lengths[args.warmup:] or lengths)
        rows_per_step = args.prompts * (args.group if args.mode == "grpo" else 1)
        line["response_length_mean"] = round(length, 2)
        line["generated_tokens_per_s"] = round(length * rows_per_step / line["step_s"], 1)
    if reward_seconds:
        line["reward_s_per_step"] = round(statistics.mean(reward_seconds[args.warmup:] or reward_seconds), 4)
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
