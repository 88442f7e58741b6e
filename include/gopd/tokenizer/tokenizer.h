// The tokenizer interface every stage uses (rollout, scoring, data): text ↔ ids. Two
// implementations: Hugging Face `tokenizer.json` BPE (hf_tokenizer.h) and sentencepiece
// `tokenizer.model` (sentencepiece_tokenizer.h); load_tokenizer() picks one from a model
// directory. The model knows nothing about tokenization; it only sees ids.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gopd::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids of `text`. Added/special tokens written in the text (e.g. "<|im_start|>") become
  // their ids. `add_special_tokens` applies the tokenizer's post-processor (e.g. Llama's
  // leading <s>), as Hugging Face's `encode(..., add_special_tokens=True)` does.
  virtual std::vector<int64_t> encode(std::string_view text,
                                      bool add_special_tokens = false) const = 0;
  // Text of `ids`; special tokens are dropped when `skip_special_tokens`.
  virtual std::string decode(const std::vector<int64_t>& ids,
                             bool skip_special_tokens = false) const = 0;

  // Number of ids, added tokens included (may be smaller than the model's embedding rows).
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;  // the raw vocabulary string
  virtual bool is_special(int64_t id) const = 0;
};

// Special ids and the chat format of a model directory (from tokenizer_config.json and
// generation_config.json when present); -1 = none.
struct TokenizerInfo {
  int64_t bos_id = -1;
  int64_t eos_id = -1;
  int64_t pad_id = -1;
  std::vector<int64_t> stop_ids;     // eos plus chat end-of-turn tokens
  std::string chat_format = "none";  // qwen3 | chatml | llama3 | none
};

struct LoadedTokenizer {
  std::unique_ptr<Tokenizer> tokenizer;
  TokenizerInfo info;
};

// Loads `directory`/tokenizer.json (preferred) or `directory`/tokenizer.model, plus
// tokenizer_config.json. Missing or malformed files → Error (exit 2) naming the file.
LoadedTokenizer load_tokenizer(const std::string& directory);

}  // namespace gopd::tokenizer
