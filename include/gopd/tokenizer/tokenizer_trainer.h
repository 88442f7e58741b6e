// `gopd tokenizer train`: trains a small sentencepiece BPE tokenizer for the CPU-scale
// experiments (DESIGN.md, "Built-in synthetic tasks") and writes it as a Hugging Face
// tokenizer directory that both gopd (load_tokenizer) and transformers (LlamaTokenizer) load.
//
// Id layout: 0 <pad>, 1 <s> (bos), 2 </s> (eos), 3 <unk>, then the chat format's tokens as
// sentencepiece user-defined symbols (chatml: <|im_start|> <|im_end|>; qwen3: those and
// <think> </think>; llama3: <|begin_of_text|> <|start_header_id|> <|end_header_id|>
// <|eot_id|>; none: nothing), then the 256 byte-fallback pieces <0x00>…<0xFF>, then the
// learned pieces. --vocab-size counts all of them.
//
// Sentencepiece settings, chosen so that decode(encode(text)) == text for any UTF-8 text:
// model_type=bpe (as Llama's tokenizer.model, which transformers converts exactly),
// byte_fallback=true (characters outside the vocabulary become byte pieces, never <unk>),
// normalization_rule_name=identity (no NFKC), remove_extra_whitespaces=false and
// add_dummy_prefix=false (spaces kept as written, no space invented before the text),
// allow_whitespace_only_pieces=true (runs of spaces, e.g. code indentation, become pieces),
// split_digits=true (one piece per digit, so arithmetic is tokenized uniformly),
// character_coverage=0.9995 (rare characters fall back to bytes instead of taking vocabulary
// slots). Training is deterministic: num_threads=1, no sentence sampling or shuffling, fixed
// random seed; the same input gives a byte-identical tokenizer.model.
//
// Corpus: a text file gives one sentence per line (sentencepiece's convention; newlines then
// encode as the byte piece <0x0A>). A JSONL dataset (".jsonl", or a first line that is a JSON
// object) gives, per record, the conversation the model is trained on — the prompt (string
// or messages) and the `solution` (else `answer`) as the assistant turn, rendered in the
// chat format — plus the `answer` on its own when a solution is present; a record with only
// a "text" field gives that text. Newlines inside them become vocabulary characters.
#pragma once

#include <cstdint>
#include <string>

namespace gopd::tokenizer {

struct TrainTokenizerOptions {
  std::string input;                   // text file or JSONL dataset
  int64_t vocab_size = 0;              // all ids, special and byte pieces included
  std::string out;                     // output directory (created or replaced; see below)
  std::string chat_format = "chatml";  // qwen3 | chatml | llama3 | none
  int64_t model_max_length = 4096;     // tokenizer_config.json's model_max_length
};

// Trains and writes `out`/tokenizer.model, tokenizer_config.json (bos/eos/pad/unk,
// added_tokens_decoder, chat_template, "gopd_chat_format", tokenizer_class LlamaTokenizer,
// model_max_length) and special_tokens_map.json. The files are written into a temporary
// sibling directory that is renamed onto `out` at the end, so a failure leaves nothing
// half-written. An existing `out` is replaced only when it is empty or holds nothing but
// those three files (a previous run's output); anything else → Error (exit 2).
// Bad input (missing file, invalid UTF-8, no text, a vocabulary size the corpus cannot
// support) → Error (exit 2) naming the file or option.
void train_tokenizer(const TrainTokenizerOptions& options);

}  // namespace gopd::tokenizer
