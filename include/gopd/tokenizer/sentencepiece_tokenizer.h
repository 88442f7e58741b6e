// Tokenizer over a sentencepiece `tokenizer.model` (libsentencepiece), with the Hugging Face
// behaviours the engine relies on that sentencepiece alone lacks:
// - special tokens written in the text become their ids: control symbols (<s>, </s>, <pad>),
//   <unk> and the given added tokens are matched first (longest match), the text between
//   them goes through sentencepiece; user-defined symbols (e.g. <|im_start|> in models from
//   `gopd tokenizer train`) are matched by sentencepiece itself;
// - decode keeps special tokens as their text unless skip_special_tokens (sentencepiece
//   always drops control symbols);
// - added tokens that the model lacks get ids after the model's last piece, as in
//   transformers' added_tokens_decoder;
// - encode(add_special_tokens) adds <s> / </s> as LlamaTokenizer's add_bos_token /
//   add_eos_token say.
// Text that contains U+2581 ("▁", sentencepiece's space marker) decodes with a space in its
// place: sentencepiece cannot tell the two apart (Hugging Face's Llama tokenizers neither).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gopd/tokenizer/tokenizer.h"

namespace gopd::tokenizer {

struct SentencePieceOptions {
  explicit SentencePieceOptions() = default;  // explicit: `{}` must not pick this overload

  std::vector<std::string> special_tokens;  // matched in text; is_special; skippable in decode
  std::vector<std::string> added_tokens;    // matched in text; ordinary otherwise (<think>)
  bool add_bos_token = true;                // transformers' LlamaTokenizer defaults
  bool add_eos_token = false;
};

// Loads `model_path`; a missing or unreadable model → Error (exit 2) naming the file.
// `added_special_tokens` are extra special tokens (SentencePieceOptions::special_tokens).
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(
    const std::string& model_path, std::vector<std::string> added_special_tokens = {});
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path,
                                                        const SentencePieceOptions& options);

// The ids the model itself declares (-1 = none): the fallback for a directory without
// tokenizer_config.json.
struct SentencePieceSpecialIds {
  int64_t bos_id = -1;
  int64_t eos_id = -1;
  int64_t pad_id = -1;
  int64_t unk_id = -1;
};
SentencePieceSpecialIds read_sentencepiece_special_ids(const std::string& model_path);

}  // namespace gopd::tokenizer
