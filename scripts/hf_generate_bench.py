#!/usr/bin/env python3
"""The baseline of gopd's rollout in scripts/gpu_check.sh: Hugging Face transformers' `generate`
on the same model directory, GPU, batch and lengths. One JSON line on stdout.

Usage: hf_generate_bench.py --model DIR --sequences 64 --prompt-tokens 40 --max-new-tokens 1024
       [--device cuda] [--dtype bfloat16] [--repeats 2] [--threads K]

Sampling at temperature 1 (top_p 1, no top-k), prompts of random ids of the given length, no
stopping token (every row generates max_new_tokens, as a random model does in gopd), KV cache on,
the model in bf16 — the form gopd's rollout runs in under train.precision: bf16 (float32 for the
CPU comparison of scripts/bench/peers.sh). A short generate (4 tokens) is the warm-up; tokens/s
is the median of the repeats that follow. peak_rss_mb is the process's (ru_maxrss).
"""
import argparse
import json
import resource
import statistics
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--sequences", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = as is)")
    args = parser.parse_args()

    import torch
    import transformers

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    dtype = getattr(torch, args.dtype)
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    model.to(args.device).eval()
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    input_ids = torch.randint(0, vocab, (args.sequences, args.prompt_tokens), generator=generator)
    input_ids = input_ids.to(args.device)
    attention_mask = torch.ones_like(input_ids)

    def once(max_new_tokens: int) -> float:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=True,
                                 temperature=1.0, top_p=1.0, top_k=0,
                                 max_new_tokens=max_new_tokens,
                                 min_new_tokens=max_new_tokens, eos_token_id=None,
                                 pad_token_id=0, use_cache=True)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        generated = (out.shape[1] - args.prompt_tokens) * out.shape[0]
        return generated / seconds

    once(min(4, args.max_new_tokens))
    rates = [once(args.max_new_tokens) for _ in range(args.repeats)]
    print(json.dumps({"bench": "hf_generate", "transformers": transformers.__version__,
                      "torch": torch.__version__, "model": args.model, "device": args.device,
                      "dtype": args.dtype, "sequences": args.sequences,
                      "prompt_tokens": args.prompt_tokens, "max_new_tokens": args.max_new_tokens,
                      "threads": torch.get_num_threads(),
                      "tokens_per_s": round(statistics.median(rates), 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
