#!/usr/bin/env python3
"""The comparison lines of scripts/bench/peers.sh: gopd's numbers beside the peer's, measured in
the same run. One JSON line per comparison; ratio > 1 = gopd better (time: peer / gopd; memory:
peer's peak RSS / gopd's).

  peers_compare.py rollout GOPD_ROLLOUT.jsonl HF_GENERATE.jsonl
  peers_compare.py train distill|grpo TRL.json GOPD_RUN_DIR [GOPD_RUN_DIR ...]
"""
import json
import re
import statistics
import sys


def read_lines(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def rollout(gopd_path, hf_path):
    gopd = {line["batch"]: line for line in read_lines(gopd_path) if line.get("bench") == "rollout"}
    for peer in read_lines(hf_path):
        batch = peer["sequences"]
        ours = gopd.get(batch)
        if ours is None:
            sys.exit(f"peers_compare: no gopd rollout line for batch {batch} in {gopd_path}")
        target = 5.0 if batch >= 64 else 3.0 if batch == 1 else None
        line = {"bench": "peer_rollout", "batch": batch, "prompt_tokens": ours["prompt_tokens"],
                "new_tokens": ours["new_tokens"], "threads": ours["threads"], "metric": "tokens/s",
                "value": ours["value"], "baseline": peer["tokens_per_s"],
                "baseline_name": f"transformers {peer['transformers']} generate",
                "ratio": round(ours["value"] / peer["tokens_per_s"], 2),
                "peak_rss_mb": ours["peak_rss_mb"], "baseline_peak_rss_mb": peer["peak_rss_mb"],
                "memory_ratio": round(peer["peak_rss_mb"] / ours["peak_rss_mb"], 2),
                "roofline_fraction": ours["roofline_fraction"],
                "matmul_gflops": ours["matmul_gflops"]}
        if target is not None:
            line["target_ratio"] = target
            line["target_met"] = line["ratio"] >= target
        if batch >= 64:
            line["target_roofline_fraction"] = 0.6
            line["roofline_target_met"] = ours["roofline_fraction"] >= 0.6
        print(json.dumps(line), flush=True)


def gopd_run_summary(run_dir):
    """Means over the steps after the first (the warm-up) of a gopd run's metrics.jsonl."""
    steps = [line for line in read_lines(f"{run_dir}/metrics.jsonl")
             if "perf/step_s" in line and line.get("step", 0) > 1]
    if not steps:
        sys.exit(f"peers_compare: {run_dir}/metrics.jsonl has no measured steps")
    with open(f"{run_dir}/config.resolved.yaml", encoding="utf-8") as handle:
        config_text = handle.read()
    rows = None
    for line in read_lines(f"{run_dir}/metrics.jsonl"):
        if "perf/micro_batch_rows" in line:
            rows = line["perf/micro_batch_rows"]
    summary = {"step_s": statistics.mean(s["perf/step_s"] for s in steps),
               "peak_rss_mb": max(s["perf/peak_rss_mb"] for s in steps),
               "response_length_mean": statistics.mean(s["rollout/response_length_mean"] for s in steps),
               "rows": rows, "steps": len(steps), "config": config_text}
    for key in ("perf/rollout_s", "perf/scoring_s", "perf/update_s"):
        summary[key.split("/")[1]] = statistics.mean(s.get(key, 0.0) for s in steps)
    kls = [line["loss/gopd_kl"] for line in read_lines(f"{run_dir}/metrics.jsonl") if "loss/gopd_kl" in line]
    if kls:
        summary["loss"] = kls
    return summary


def train(mode, trl_path, run_dirs):
    trl = read_lines(trl_path)[0]
    rows_per_step = None
    for run_dir in run_dirs:
        ours = gopd_run_summary(run_dir)
        name = run_dir.rstrip("/").split("/")[-1]
        rows_per_step = ours["rows"]
        gopd_tokens_per_s = ours["response_length_mean"] * ours["rows"] / ours["step_s"]
        line = {"bench": f"peer_{mode}", "gopd_run": name, "metric": "step_s",
                "value": round(ours["step_s"], 4), "baseline": trl["step_s"],
                "baseline_name": trl["peer"], "ratio": round(trl["step_s"] / ours["step_s"], 2),
                "steps": ours["steps"], "rows_per_step": ours["rows"],
                "threads": trl["threads"],
                "rollout_s": round(ours["rollout_s"], 4), "scoring_s": round(ours["scoring_s"], 4),
                "update_s": round(ours["update_s"], 4),
                "generated_tokens_per_s": round(gopd_tokens_per_s, 1),
                "baseline_generated_tokens_per_s": trl.get("generated_tokens_per_s"),
                "response_length_mean": round(ours["response_length_mean"], 2),
                "baseline_response_length_mean": trl.get("response_length_mean"),
                "peak_rss_mb": ours["peak_rss_mb"], "baseline_peak_rss_mb": trl["peak_rss_mb"],
                "memory_ratio": round(ours["peak_rss_mb"] / trl["peak_rss_mb"], 2),
                "target_ratio": 3.0, "target_memory_ratio": 0.5}
        line["target_met"] = line["ratio"] >= 3.0 and line["memory_ratio"] <= 0.5
        if "reward_s_per_step" in trl:
            # TRL's reward function runs `gopd reward` as a subprocess; its time, taken out
            trl_without_reward = trl["step_s"] - trl["reward_s_per_step"]
            line["baseline_reward_s"] = trl["reward_s_per_step"]
            line["ratio_without_peer_reward"] = round(trl_without_reward / ours["step_s"], 2)
        if mode == "distill" and "loss" in ours and re.search(r'objective: "?full_vocab', ours["config"]):
            # the same quantity on both sides: the reverse KL(student || teacher) per generated
            # token on the step's own samples; both must lower it from the same start
            first = lambda values: statistics.mean(values[:3])
            last = lambda values: statistics.mean(values[-3:])
            line["reverse_kl_first3"] = round(first(ours["loss"]), 4)
            line["reverse_kl_last3"] = round(last(ours["loss"]), 4)
            line["baseline_reverse_kl_first3"] = round(first(trl["loss"]), 4)
            line["baseline_reverse_kl_last3"] = round(last(trl["loss"]), 4)
        print(json.dumps(line), flush=True)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "rollout":
        rollout(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 5 and sys.argv[1] == "train" and sys.argv[2] in ("distill", "grpo"):
        train(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
