"""A G-OPD job whose teacher is served by `gopd serve`, against the same job with the teacher in
process, and with the served teacher's requests pipelined with the rollout or sent after it.

  .venv/bin/python scripts/bench/served_teacher.py --gopd build/bin/gopd [--steps 6] [--threads 1]

The student (hidden 128, 4 layers) rolls out 16 rows at a time (rollout.micro_batch_size), so
its responses finish in waves; the teacher (hidden 256, 4 layers) costs about as much to score. The server and the trainer each get --threads intra-op threads (on a
2-core machine, 1 each: the served teacher then scores on the core the trainer does not use,
which is the point of serving it). Prints one JSON line per arm with the mean step time, rollout
and scoring time over the steps after the first, and the ratio to the in-process arm measured in
the same run (baseline).
"""

import argparse
import json
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time


def run(gopd, threads, *args):
    subprocess.run([gopd, "--threads", str(threads), *args], check=True, capture_output=True, text=True)


def job(work, name, teacher, steps, threads):
    return (f"algorithm: gopd\n"
            f"run: {{name: {name}, output_dir: {work}/runs, threads: {threads}, seed: 5}}\n"
            f"student: {{path: {work}/student}}\n"
            f"teachers: {{math: {teacher}}}\n"
            f"reference: {{dtype: float32}}\n"
            f"data: {{train_file: {work}/train.jsonl}}\n"
            f"rollout: {{batch_prompts: 16, n: 4, max_new_tokens: 64, micro_batch_size: 16}}\n"
            f"optim: {{lr: 1.0e-3, micro_batch_size: 16}}\n"
            f"train: {{max_steps: {steps}}}\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gopd", required=True)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gopd_served_bench_") as tmp:
        work = pathlib.Path(tmp)
        run(args.gopd, args.threads, "data", "--task", "arith", "--n", "256", "--difficulty", "2",
            "--out", str(work / "train.jsonl"))
        run(args.gopd, args.threads, "tokenizer", "train", "--input", str(work / "train.jsonl"),
            "--vocab-size", "400", "--chat-format", "chatml", "--out", str(work / "tok"))
        run(args.gopd, args.threads, "init-model", "--arch", "qwen3", "--hidden", "128", "--layers", "4",
            "--heads", "4", "--kv-heads", "2", "--intermediate", "512", "--tokenizer", str(work / "tok"),
            "--out", str(work / "student"), "--seed", "1")
        run(args.gopd, args.threads, "init-model", "--arch", "qwen3", "--hidden", "256", "--layers", "4",
            "--heads", "8", "--kv-heads", "4", "--intermediate", "1024", "--tokenizer",
            str(work / "tok"), "--out", str(work / "teacher"), "--seed", "2")
        server = subprocess.Popen([args.gopd, "--threads", str(args.threads), "serve", "--model",
                                   str(work / "teacher"), "--port", "0", "--dtype", "float32"],
                                  stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                  errors="replace")
        port = None
        for line in server.stderr:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        if port is None:
            sys.exit("gopd serve did not start")
        drain = subprocess.Popen(["cat"], stdin=server.stderr, stdout=subprocess.DEVNULL)
        arms = [("in_process", f"{{path: {work}/teacher, dtype: float32}}"),
                ("served_after_rollout", f"{{url: http://127.0.0.1:{port}, pipeline: false}}"),
                ("served_pipelined", f"{{url: http://127.0.0.1:{port}}}")]
        results = {}
        try:
            for name, teacher in arms:
                (work / f"{name}.yaml").write_text(job(work, name, teacher, args.steps, args.threads))
                run(args.gopd, args.threads, "train", str(work / f"{name}.yaml"))
                lines = [json.loads(l) for l in (work / "runs" / name / "metrics.jsonl").read_text().splitlines()]
                later = lines[1:] if len(lines) > 1 else lines
                results[name] = {key: statistics.mean(l[f"perf/{key}"] for l in later)
                                 for key in ["step_s", "rollout_s", "scoring_s", "update_s"]}
                results[name]["prefetched_rows"] = later[-1].get("perf/served_prefetched_rows", 0)
        finally:
            server.kill()
            drain.kill()
        baseline = results["in_process"]["step_s"]
        for name, values in results.items():
            print(json.dumps({"bench": "served_teacher", "arm": name, "threads": args.threads,
                              "steps_averaged": args.steps - 1, "metric": "step_s",
                              "value": round(values["step_s"], 4), "rollout_s": round(values["rollout_s"], 4),
                              "scoring_s": round(values["scoring_s"], 4),
                              "update_s": round(values["update_s"], 4),
                              "served_prefetched_rows": values["prefetched_rows"],
                              "baseline": round(baseline, 4), "baseline_name": "in_process",
                              "ratio": round(baseline / values["step_s"], 3)}), flush=True)


if __name__ == "__main__":
    main()
