"""Model parity with Hugging Face transformers (run by ctest through tests/reference/run.sh).

  model_parity_test.py --gopd BUILD/bin/gopd --source REPO

Three directions, every comparison in fp32 to 1e-4 on the per-token log-probs of the same
token sequences (gopd: `gopd logprobs`; transformers: log_softmax of the logits):

  1. gopd -> transformers: tiny llama / qwen2 / qwen3 models written by `gopd init-model`
     (GQA, biases, q/k norm, tied and untied embeddings, an explicit head_dim, padded
     vocabularies, llama3 RoPE scaling written into config.json), loaded unchanged by
     AutoModelForCausalLM.from_pretrained.
  2. transformers -> gopd: models built by transformers from a config, every parameter
     randomised (large enough that RoPE, biases, norms and GQA all move the log-probs), saved
     with save_pretrained (safetensors), loaded by gopd.
  3. checkpoints written by `gopd train` in float32 and bfloat16: transformers loads them and
     `generate` runs, and both match `gopd logprobs` to 1e-4 (for bf16 both sides compute in
     fp32 from the same bf16 weights).

Exit 0 when everything agrees, 1 with the first disagreements printed otherwise, 77 (skipped)
when the venv has no torch (GOPD_TORCH_DIR builds: setup installs no torch into the venv).
"""

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
try:
    import torch
    import transformers
except ImportError as error:  # the GOPD_TORCH_DIR mode installs no torch into the venv
    print(f"skipped: {error} (the venv has no torch: GOPD_TORCH_DIR build)")
    sys.exit(77)

TOLERANCE = 1e-4
FAILURES = []


def run_gopd(gopd, *args, expect=0):
    result = subprocess.run([gopd, "--threads", "2", *args], capture_output=True, text=True)
    if result.returncode != expect:
        raise SystemExit(f"gopd {' '.join(args)} exited {result.returncode} (expected {expect}):\n"
                         f"{result.stderr}")
    return result


def sequences(vocab, seed, lengths=(1, 2, 7, 33, 70)):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in lengths]


def gopd_logprobs(gopd, model_dir, seqs, work):
    path = work / "tokens.jsonl"
    path.write_text("".join(json.dumps({"tokens": s}) + "\n" for s in seqs))
    out = run_gopd(gopd, "logprobs", "--model", str(model_dir), "--input", str(path),
                   "--batch-size", "3").stdout
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(lines) != len(seqs):
        raise SystemExit(f"gopd logprobs printed {len(lines)} lines for {len(seqs)} sequences")
    for line, seq in zip(lines, seqs):
        if line["tokens"] != seq:
            raise SystemExit(f"gopd logprobs echoed tokens {line['tokens'][:8]}... for {seq[:8]}...")
    return [line["logprobs"] for line in lines]


@torch.no_grad()
def hf_logprobs(model, seqs):
    result = []
    for seq in seqs:
        ids = torch.tensor([seq])
        logits = model(input_ids=ids).logits.float()[0]
        lp = torch.log_softmax(logits, dim=-1)
        # log p(x_t | x_<t) for t >= 1; the first token has none (gopd prints null).
        result.append([None] + [lp[t - 1, seq[t]].item() for t in range(1, len(seq))])
    return result


def compare(name, ours, theirs, tolerance=TOLERANCE):
    worst = 0.0
    spread = []
    count = 0
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if len(a) != len(b) or a[0] is not None:
            FAILURES.append(f"{name}: sequence {i}: {len(a)} gopd values vs {len(b)}, first {a[0]}")
            return
        for t in range(1, len(a)):
            diff = abs(a[t] - b[t])
            if not math.isfinite(a[t]) or not math.isfinite(b[t]):
                diff = math.inf
            worst = max(worst, diff)
            spread.append(b[t])
            count += 1
    mean = sum(spread) / len(spread)
    std = math.sqrt(sum((x - mean) ** 2 for x in spread) / len(spread))
    status = "ok" if worst <= tolerance else "MISMATCH"
    print(f"{status:8} {name}: {count} log-probs, max |gopd - transformers| = {worst:.2e} "
          f"(tolerance {tolerance:g}; log-probs spread {std:.3f})")
    if worst > tolerance:
        FAILURES.append(f"{name}: max difference {worst:.3e} > {tolerance:g}")


def load_hf(model_dir, dtype=torch.float32):
    model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    model.eval()
    return model


def make_tokenizer(gopd, work):
    words = ["alpha", "beta", "gamma", "delta", "seven", "plus", "equals", "the", "answer", "is"]
    generator = torch.Generator().manual_seed(0)
    lines = []
    for _ in range(400):
        picks = torch.randint(0, len(words), (10,), generator=generator).tolist()
        lines.append(" ".join(words[p] for p in picks) + f" {int(picks[0]) * 37}")
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    run_gopd(gopd, "tokenizer", "train", "--input", str(corpus), "--vocab-size", "320",
             "--chat-format", "chatml", "--out", str(work / "tok"))
    return work / "tok"


def gopd_to_transformers(gopd, work, tokenizer):
    # (name, init-model flags, config.json edits)
    cases = [
        ("llama gqa untied padded-vocab", ["--arch", "llama", "--hidden", "64", "--layers", "2",
                                           "--heads", "4", "--kv-heads", "2", "--vocab-size", "352"], {}),
        ("llama tied + llama3 rope scaling", ["--arch", "llama", "--hidden", "64", "--layers", "2",
                                              "--heads", "4", "--kv-heads", "4",
                                              "--tie-embeddings", "true", "--rope-theta", "10000",
                                              "--max-positions", "256"],
         {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}),
        ("qwen2 gqa biases tied", ["--arch", "qwen2", "--hidden", "64", "--layers", "2",
                                   "--heads", "4", "--kv-heads", "1"], {}),
        ("qwen2 untied padded-vocab", ["--arch", "qwen2", "--hidden", "48", "--layers", "1",
                                       "--heads", "3", "--kv-heads", "3", "--tie-embeddings",
                                       "false", "--vocab-size", "400"], {}),
        ("qwen3 q/k-norm gqa head_dim 32", ["--arch", "qwen3", "--hidden", "64", "--layers", "2",
                                            "--heads", "4", "--kv-heads", "2", "--head-dim", "32",
                                            "--intermediate", "96"], {}),
        ("qwen3 untied padded-vocab", ["--arch", "qwen3", "--hidden", "32", "--layers", "3",
                                       "--heads", "2", "--kv-heads", "1", "--tie-embeddings",
                                       "false", "--vocab-size", "384"], {}),
    ]
    for index, (name, flags, edits) in enumerate(cases):
        model_dir = work / f"init_{index}"
        run_gopd(gopd, "init-model", *flags, "--tokenizer", str(tokenizer), "--out",
                 str(model_dir), "--seed", str(10 + index))
        if edits:
            config_path = model_dir / "config.json"
            config = json.loads(config_path.read_text())
            config.update(edits)
            config_path.write_text(json.dumps(config, indent=2) + "\n")
        model = load_hf(model_dir)
        vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
        seqs = sequences(vocab, seed=index)
        compare(f"gopd init-model -> transformers [{name}]",
                gopd_logprobs(gopd, model_dir, seqs, work), hf_logprobs(model, seqs))


def randomise(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("norm.weight") or "layernorm" in name:
                parameter.copy_(1.0 + 0.3 * noise)
            elif name.endswith("bias"):
                parameter.copy_(0.5 * noise)
            else:
                parameter.copy_(0.15 * noise)


def transformers_to_gopd(gopd, work):
    common = dict(hidden_size=64, intermediate_size=80, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  rms_norm_eps=1e-5)
    cases = [
        ("llama attention+mlp bias, llama3 rope scaling", transformers.LlamaConfig(
            vocab_size=211, attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
            rope_theta=5000.0, rope_scaling={"rope_type": "llama3", "factor": 4.0,
                                             "low_freq_factor": 1.0, "high_freq_factor": 2.0,
                                             "original_max_position_embeddings": 32}, **common)),
        ("llama tied, MHA", transformers.LlamaConfig(
            vocab_size=300, tie_word_embeddings=True, rope_theta=10000.0,
            **{**common, "num_key_value_heads": 4})),
        ("qwen2 gqa biases untied", transformers.Qwen2Config(
            vocab_size=257, tie_word_embeddings=False, rope_theta=1e6, **common)),
        ("qwen2 tied", transformers.Qwen2Config(
            vocab_size=190, tie_word_embeddings=True, rope_theta=1e4,
            **{**common, "num_key_value_heads": 1})),
        ("qwen3 head_dim 24 untied", transformers.Qwen3Config(
            vocab_size=233, tie_word_embeddings=False, head_dim=24, rope_theta=1e6, **common)),
        ("qwen3 tied", transformers.Qwen3Config(
            vocab_size=160, tie_word_embeddings=True, head_dim=16, rope_theta=1e4, **common)),
    ]
    for index, (name, config) in enumerate(cases):
        torch.manual_seed(index)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        randomise(model, seed=100 + index)
        model.eval()
        model_dir = work / f"hf_{index}"
        model.save_pretrained(str(model_dir), safe_serialization=True)
        seqs = sequences(config.vocab_size, seed=50 + index, lengths=(2, 9, 40, 90))
        compare(f"transformers -> gopd [{name}]", gopd_logprobs(gopd, model_dir, seqs, work),
                hf_logprobs(model, seqs))


def gopd_checkpoints(gopd, work, tokenizer):
    train = work / "train.jsonl"
    run_gopd(gopd, "data", "--task", "arith", "--n", "32", "--difficulty", "2", "--split",
             "train", "--out", str(train))
    student = work / "student"
    run_gopd(gopd, "init-model", "--arch", "qwen3", "--hidden", "32", "--layers", "2", "--heads",
             "4", "--kv-heads", "2", "--intermediate", "64", "--tokenizer", str(tokenizer),
             "--out", str(student), "--seed", "3")
    for dtype in ("float32", "bfloat16"):
        config = work / f"sft_{dtype}.yaml"
        config.write_text(
            "algorithm: sft\n"
            f"run: {{name: sft-{dtype}, output_dir: {work}/runs, threads: 2}}\n"
            f"student: {{path: {student}, dtype: {dtype}}}\n"
            f"data: {{train_file: {train}}}\n"
            "rollout: {batch_prompts: 8}\n"
            "optim: {lr: 1.0e-2, micro_batch_size: 8}\n"
            "train: {max_steps: 2, save_every: 2}\n")
        run_gopd(gopd, "train", str(config))
        checkpoints = sorted((work / "runs" / f"sft-{dtype}" / "checkpoints").glob("step_*"))
        if not checkpoints:
            FAILURES.append(f"gopd train ({dtype}) wrote no checkpoints/step_*")
            continue
        checkpoint = checkpoints[-1]
        saved = json.loads((checkpoint / "config.json").read_text())
        saved_dtype = saved.get("dtype", saved.get("torch_dtype"))
        if saved_dtype != dtype:
            FAILURES.append(f"{checkpoint}/config.json says dtype {saved_dtype}, trained in {dtype}")
        model = transformers.AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype="auto")
        model.eval()
        loaded_dtype = next(model.parameters()).dtype
        if loaded_dtype != getattr(torch, dtype):
            FAILURES.append(f"transformers loaded {checkpoint} as {loaded_dtype}, expected {dtype}")
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
        prompt = hf_tokenizer("What is 3 + 4?", return_tensors="pt")
        with torch.no_grad():
            generated = model.generate(**prompt, max_new_tokens=8, do_sample=False)
        new_tokens = generated.shape[1] - prompt["input_ids"].shape[1]
        print(f"ok       transformers generate on the {dtype} checkpoint {checkpoint.name}: "
              f"{new_tokens} new tokens {generated[0, -new_tokens:].tolist()}")
        if new_tokens < 1:
            FAILURES.append(f"generate on {checkpoint} produced no tokens")
        model = model.float()  # bf16 weights, fp32 arithmetic (what gopd logprobs does)
        seqs = sequences(saved["vocab_size"], seed=7)
        compare(f"gopd train checkpoint ({dtype}) -> transformers",
                gopd_logprobs(gopd, checkpoint, seqs, work), hf_logprobs(model, seqs))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gopd", required=True)
    parser.add_argument("--source", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="gopd_model_parity_") as tmp:
        work = pathlib.Path(tmp)
        tokenizer = make_tokenizer(args.gopd, work)
        gopd_to_transformers(args.gopd, work, tokenizer)
        transformers_to_gopd(args.gopd, work)
        gopd_checkpoints(args.gopd, work, tokenizer)
    print(f"{time.time() - start:.1f} s")
    if FAILURES:
        print("FAILED:\n  " + "\n  ".join(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
