#!/usr/bin/env node
// Baseline for bench/tokenizer_bench.cpp: encodes the benchmark corpus with @lenml/tokenizers
// (the JavaScript port of Hugging Face tokenizers that recorded gopd's reference ids) and prints
// one JSON line: {"tokenizer", "mb_per_s" (best of 3 runs), "tokens", "checksum"}. The checksum
// (FNV-1a over all ids) lets the C++ side confirm both encoded the corpus to the same ids.
//
// Usage: node scripts/tokenizer_bench_reference.mjs <qwen3|llama2> <corpus.json>
//   corpus.json: a JSON array of documents (strings), as tokenizer_bench writes it.
import fs from "node:fs";
import { load_reference_tokenizer, REFERENCES } from "./record_tokenizer_reference.mjs";

const [name, corpus_path] = process.argv.slice(2);
const reference = REFERENCES.find((r) => r.name === name);
if (!reference || !corpus_path) {
  console.error("usage: node scripts/tokenizer_bench_reference.mjs <qwen3|llama2> <corpus.json>");
  process.exit(2);
}
const documents = JSON.parse(fs.readFileSync(corpus_path, "utf8"));
const megabytes = documents.reduce((sum, d) => sum + Buffer.byteLength(d, "utf8"), 0) / 1e6;
const { tokenizer } = await load_reference_tokenizer(reference);

let best_seconds = Infinity;
let tokens = 0;
let checksum = 0x811c9dc5;
for (let run = 0; run < 3; ++run) {
  const start = process.hrtime.bigint();
  const all_ids = documents.map((d) => tokenizer.encode(d, { add_special_tokens: false }));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  best_seconds = Math.min(best_seconds, seconds);
  if (run === 0) {
    for (const ids of all_ids) {
      tokens += ids.length;
      for (const id of ids) checksum = Math.imul(checksum ^ id, 0x01000193) >>> 0;
    }
  }
}
console.log(JSON.stringify({ tokenizer: name, mb_per_s: megabytes / best_seconds, tokens, checksum }));
