#!/usr/bin/env python3
"""Baseline for bench/tokenizer_bench.cpp: Hugging Face `tokenizers` (the Rust library).

Encodes the benchmark corpus one document at a time on one thread (no batching, no special
tokens), best of 3 runs, and prints one JSON line:
  {"tokenizer", "mb_per_s", "tokens", "checksum", "reference"}
The checksum (FNV-1a over all ids) lets the C++ side confirm both sides produced the same ids.

Usage: python scripts/tokenizer_bench_reference.py NAME TOKENIZER_JSON CORPUS_JSON
  CORPUS_JSON: a JSON array of documents (strings), as tokenizer_bench writes it.
"""
import json
import os
import sys
import time

# One thread, as gopd's side: the Rust library parallelises only batch calls, but say it.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    name, tokenizer_path, corpus_path = sys.argv[1:]
    with open(corpus_path, encoding="utf-8") as f:
        documents = json.load(f)
    megabytes = sum(len(d.encode("utf-8")) for d in documents) / 1e6
    tokenizer = tokenizers.Tokenizer.from_file(tokenizer_path)
    best_seconds = float("inf")
    tokens = 0
    checksum = 0x811C9DC5
    for run in range(3):
        start = time.perf_counter()
        all_ids = [tokenizer.encode(d, add_special_tokens=False).ids for d in documents]
        best_seconds = min(best_seconds, time.perf_counter() - start)
        if run == 0:
            for ids in all_ids:
                tokens += len(ids)
                for token_id in ids:
                    checksum = ((checksum ^ token_id) * 0x01000193) & 0xFFFFFFFF
    print(json.dumps({"tokenizer": name, "mb_per_s": megabytes / best_seconds, "tokens": tokens,
                      "checksum": checksum,
                      "reference": f"tokenizers {tokenizers.__version__} (Rust)"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
