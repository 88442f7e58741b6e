// Hugging Face `tokenizer.json` tokenizers: a BPE model behind the byte-level pipeline of
// GPT-2 / Qwen2 / Qwen3 / Llama 3 (Split regex + ByteLevel) or the sentencepiece-style pipeline
// of Llama 2 (Prepend/Replace normalizers, byte fallback, fused unknowns). Encoding and decoding
// follow HF `tokenizers` (Rust) step by step: added tokens are cut out first, each remaining
// section is normalised, pre-tokenised and BPE-merged by rank, then the post-processor adds the
// template's special tokens. A tokenizer.json that uses anything this implementation does not
// understand is refused when loaded (Error, exit code 2, naming the feature): a tokenizer that
// silently differs from the one the model was trained with is worse than none.
#pragma once

#include <memory>
#include <string>

#include "gopd/tokenizer/tokenizer.h"

namespace gopd::tokenizer {

// The BPE model's two fast paths; turning them off gives the plain reference path they are
// tested against (same ids, slower).
struct HfTokenizerOptions {
  // Memoise word → ids, as HF does.
  bool bpe_cache = true;
  // Cut long words where no merge can join the two sides and merge the parts separately
  // (a Llama 2 section, which has no pre-tokenizer, is one word otherwise).
  bool split_long_words = true;
};

// Loads a tokenizer.json. Missing, malformed or unsupported files → Error (exit 2) naming the
// file and, where it applies, the key path and the unsupported feature.
//
// Departures from HF `tokenizers` (all documented in src/tokenizer/hf_tokenizer.cpp):
// `truncation` and `padding` are ignored (they are batch length policies, which transformers
// also overrides per call); decode() skips ids that have no token, as HF does;
// vocab_size() is the largest id + 1.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json_path,
                                             const HfTokenizerOptions& options = {});

// Same, from tokenizer.json text already in memory; `source_name` names it in error messages.
std::unique_ptr<Tokenizer> parse_hf_tokenizer(const std::string& json_text,
                                              const std::string& source_name,
                                              const HfTokenizerOptions& options = {});

}  // namespace gopd::tokenizer
