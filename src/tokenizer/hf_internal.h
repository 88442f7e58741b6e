// Internal pieces of the Hugging Face tokenizer.json implementation (hf_tokenizer.cpp): text
// utilities (UTF-8, Unicode properties and normalisation through ICU, GPT-2's byte ↔ character
// table), an Oniguruma-compatible regex on PCRE2, the pipeline stages (normalizers,
// pre-tokenizers, post-processor, decoders), the BPE model and the added-token splitter.
// Each stage mirrors the HF `tokenizers` (Rust) component of the same name; comments note where
// and why a stage departs from it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

struct pcre2_real_code_8;  // pcre2.h's pcre2_code; kept out of this header

namespace gopd::tokenizer::hf {

using Json = nlohmann::json;

// ---- errors (hf_text.cpp) -------------------------------------------------------------------

// Where a tokenizer.json value came from, for error messages: "<file>: <key path>: ...".
struct Source {
  std::string file;
};

// "<file>: unsupported tokenizer.json feature: <feature>" (exit code 2).
[[noreturn]] void throw_unsupported(const Source& source, const std::string& feature);
// "<file>: <key_path>: expected <expected>, found <found>" (exit code 2).
[[noreturn]] void throw_malformed(const Source& source, const std::string& key_path,
                                  const std::string& expected, const Json& found);
[[noreturn]] void throw_malformed(const Source& source, const std::string& key_path,
                                  const std::string& message);

// Typed accessors that name the key path when the value has the wrong type.
const Json& require(const Json& object, const char* key, const Source& source,
                    const std::string& key_path);
std::string get_string(const Json& object, const char* key, const Source& source,
                       const std::string& key_path);
// Missing or null → `fallback`.
bool get_bool(const Json& object, const char* key, bool fallback, const Source& source,
              const std::string& key_path);
// Missing or null → nullopt.
std::optional<std::string> get_optional_string(const Json& object, const char* key,
                                               const Source& source, const std::string& key_path);
std::string type_of(const Json& stage, const Source& source, const std::string& key_path);
std::string describe(const Json& value);  // short JSON rendering for messages

// ---- UTF-8 and Unicode (hf_text.cpp) --------------------------------------------------------

// Byte length of the UTF-8 sequence that starts with `lead` (1 for continuation bytes).
inline int64_t utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}
// Decodes the code point at text[*position] (valid UTF-8) and advances *position past it.
char32_t next_code_point(std::string_view text, size_t* position);
void append_utf8(char32_t code_point, std::string* out);

// Unicode White_Space: Rust's char::is_whitespace and regex `\s`.
bool is_white_space(char32_t code_point);
// Rust regex `\w` (UTS #18 Annex C): Alphabetic, Mark, Decimal_Number, Connector_Punctuation,
// Join_Control. Used for added tokens' `single_word`.
bool is_word_character(char32_t code_point);
bool is_numeric(char32_t code_point);      // Rust char::is_numeric: Nd, Nl, No
bool is_punctuation(char32_t code_point);  // HF's is_punc: ASCII punctuation or P*

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// Unicode normalisation through ICU; ASCII text is returned untouched without calling ICU.
void unicode_normalize(NormalForm form, std::string* text);
// Rust's per-character char::to_lowercase (full mappings, no context such as final sigma).
void lowercase(std::string* text);

// String::from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// GPT-2's reversible byte ↔ printable character table (HF bytes_char / char_bytes).
class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& get();
  // UTF-8 of the character that stands for `byte`.
  const std::string& character(unsigned char byte) const { return characters_[byte]; }
  void append_mapped(std::string_view bytes, std::string* out) const;
  // Byte of `code_point`, or -1 when it is not one of the 256 characters.
  int byte_of(char32_t code_point) const;

 private:
  ByteLevelAlphabet();
  std::array<std::string, 256> characters_;
  std::array<int16_t, 512> bytes_;  // code point (all < 512) → byte or -1
};

// ---- regex (hf_regex.cpp) -------------------------------------------------------------------

struct Span {
  size_t begin = 0;
  size_t end = 0;
};

// A tokenizer.json regex. HF compiles patterns with Oniguruma; this compiles them
// with PCRE2 (UTF + UCP, JIT) after checking that the pattern only uses constructs on which the
// two engines agree, and refuses the rest (e.g. `\w`, `\h`, `^`/`$` line anchors).
class Regex {
 public:
  Regex(const std::string& pattern, const Source& source, const std::string& key_path);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches in order, with the onig crate's find_iter rule for empty matches
  // (an empty match right where the previous match ended is skipped). `text` is valid UTF-8.
  void find_all(std::string_view text, std::vector<Span>* matches) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
};

// A Split/Replace "pattern": {"String": s} (literal) or {"Regex": r}.
class Pattern {
 public:
  Pattern(const Json& pattern, const Source& source, const std::string& key_path);
  // Every match of the pattern in `text`, in order.
  void find_all(std::string_view text, std::vector<Span>* matches) const;
  // HF Pattern::find_matches: (span, is_match) pieces covering `text`.
  void find_matches(std::string_view text, std::vector<std::pair<Span, bool>>* pieces) const;
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<Regex> regex_;
};

// ---- pipeline stages (hf_pipeline.cpp) ------------------------------------------------------

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string* text) const = 0;
};
// Null → nullptr.
std::unique_ptr<Normalizer> parse_normalizer(const Json& config, const Source& source,
                                             const std::string& key_path);

// Pre-tokenizers rewrite the list of pieces of one section (HF PreTokenizedString splits);
// empty pieces are dropped, as HF drops them. `at_text_start`: the first piece starts at offset
// 0 of the text given to encode() (Metaspace's prepend_scheme "first" needs it).
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<std::string>* pieces, bool at_text_start) const = 0;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(const Json& config, const Source& source, const std::string& key_path);
  void pre_tokenize(std::vector<std::string>* pieces, bool at_text_start) const override;
  // When this is the last pre-tokenizer, the BPE model maps bytes itself (and only on a cache
  // miss), so the pieces stay raw bytes.
  void set_map_bytes(bool map_bytes) { map_bytes_ = map_bytes; }

 private:
  bool add_prefix_space_ = true;
  bool map_bytes_ = true;
  std::unique_ptr<Regex> regex_;  // GPT-2's split regex when use_regex
};

// Null → empty list; a Sequence is flattened (HF applies its members in order to every piece).
std::vector<std::unique_ptr<PreTokenizer>> parse_pre_tokenizer(const Json& config,
                                                               const Source& source,
                                                               const std::string& key_path);

class Decoder {
 public:
  virtual ~Decoder() = default;
  // HF Decoder::decode_chain: tokens in, (fewer, fused) strings out.
  virtual void decode_chain(std::vector<std::string>* tokens) const = 0;
};
std::vector<std::unique_ptr<Decoder>> parse_decoder(const Json& config, const Source& source,
                                                    const std::string& key_path);

// Every supported post-processor reduces, for one sequence, to ids before and after it.
struct PostProcessor {
  std::vector<int64_t> prefix_ids;
  std::vector<int64_t> suffix_ids;
};
PostProcessor parse_post_processor(const Json& config, const Source& source,
                                   const std::string& key_path);

// ---- BPE model (hf_bpe.cpp) -----------------------------------------------------------------

// One shard of the BPE word cache: open addressing over (hash, word, ids), words and ids kept in
// two arenas, so a lookup needs neither a std::string nor an allocation. Bounded: once full, new
// words are computed but not stored (HF's cache does the same).
class WordCacheShard {
 public:
  // Appends the cached ids of `word` to `ids`; false when absent.
  bool find(std::string_view word, uint64_t hash, std::vector<int64_t>* ids) const;
  void insert(std::string_view word, uint64_t hash, const std::vector<int32_t>& ids);

  static constexpr int64_t kMaxEntries = 4096;
  static constexpr int64_t kMaxWordBytes = 1 << 20;  // arena budget: 16 MB over all shards

 private:
  struct Slot {
    uint64_t hash = 0;  // 0 = empty (stored hashes are made odd)
    uint32_t word_offset = 0;
    uint32_t word_length = 0;
    uint32_t ids_offset = 0;
    uint32_t ids_count = 0;
  };
  std::vector<Slot> slots_;  // 2 × kMaxEntries, allocated on first insert
  std::string words_;
  std::vector<int32_t> ids_;
  int64_t size_ = 0;
};

// String → token id, open addressing with the strings in one arena: a vocabulary of 150 000
// tokens loads and looks up several times faster than in std::unordered_map<std::string, ...>
// (one allocation per token, one cache miss per node), and lookups take a string_view.
class StringIdMap {
 public:
  void reserve(size_t count);
  void set(std::string_view key, int32_t id);  // a later set of the same key wins
  int32_t find(std::string_view key) const;    // -1 when absent
  size_t size() const { return size_; }
  template <typename Visit>  // visit(std::string_view key, int32_t id)
  void for_each(Visit visit) const {
    for (const Slot& slot : slots_) {
      if (slot.hash != 0) visit(std::string_view(arena_).substr(slot.offset, slot.length), slot.id);
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;  // 0 = empty (stored hashes are made odd)
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t id = -1;
  };
  size_t slot_of(std::string_view key, uint64_t hash) const;
  std::vector<Slot> slots_;
  std::string arena_;
  size_t size_ = 0;
};

// model.vocab and model.merges, streamed out of tokenizer.json by read_tokenizer_json instead of
// being built as a JSON tree (which would cost more than everything else loading does).
struct BpeTables {
  bool has_vocab = false;
  StringIdMap vocab;
  bool has_merges = false;
  std::vector<std::pair<std::string, std::string>> merges;
};

// Parses tokenizer.json: a JSON tree of everything but model.vocab and model.merges (left
// null), which go to `tables`. Throws Json::parse_error on malformed JSON and Error (exit 2) on
// malformed vocab or merges entries.
Json read_tokenizer_json(const std::string& text, const Source& source, BpeTables* tables);

class BpeModel {
 public:
  // `raw_bytes_input`: pre-tokens arrive as raw bytes that the byte-level alphabet must map
  // first (the last pre-tokenizer is ByteLevel, which leaves the mapping to the model so that a
  // cache hit skips it). `tables`: the streamed vocab and merges (taken over), else read from
  // `config`.
  BpeModel(const Json& config, BpeTables* tables, const Source& source, bool use_cache,
           bool split_long_words, bool raw_bytes_input);

  // Appends the ids of one pre-token.
  void tokenize(std::string_view word, std::vector<int64_t>* ids) const;

  std::optional<int64_t> token_to_id(std::string_view token) const;
  // False when `id` has no token.
  bool id_to_token(int64_t id, std::string_view* token) const;
  int64_t max_id() const { return static_cast<int64_t>(token_spans_.size()) - 1; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  // Pair of ids → merge, open addressing (the merge loop's hot lookup).
  class MergeMap {
   public:
    void reserve(size_t count);
    void set(uint64_t key, Merge merge);
    const Merge* find(uint64_t key) const;
    template <typename Visit>  // visit(uint64_t key, const Merge&)
    void for_each(Visit visit) const {
      for (const Slot& slot : slots_) {
        if (slot.key != kEmpty) visit(slot.key, slot.merge);
      }
    }

   private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are < 2^31, so no pair is this
    struct Slot {
      uint64_t key = kEmpty;
      Merge merge{};
    };
    size_t slot_of(uint64_t key) const;
    std::vector<Slot> slots_;
  };
  void load_vocab(const Json& config, BpeTables* tables, const Source& source);
  void load_merges(const Json& config, BpeTables* tables, const Source& source);
  void build_segmentation();
  void tokenize_word(std::string_view word, std::vector<int64_t>* ids) const;
  void merge_word(std::string_view word, std::vector<int32_t>* ids) const;
  void apply_merges(std::vector<int32_t>* symbols) const;
  bool is_unit_token(char32_t unit) const;
  bool pair_may_merge(char32_t left, char32_t right) const;

  StringIdMap vocab_;
  std::string token_arena_;                                 // every token's text, for id → token
  std::vector<std::pair<uint32_t, uint32_t>> token_spans_;  // id → (offset, length); holes:
  static constexpr uint32_t kNoToken = ~uint32_t{0};        // offset kNoToken
  MergeMap merges_;
  std::array<int32_t, 256> byte_fallback_ids_{};  // "<0xNN>" ids, -1 when absent
  int32_t unk_id_ = -1;
  std::string missing_unk_message_;  // set when unk_token is not in the vocabulary
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  bool raw_bytes_input_ = false;

  // Long words are cut where no merge can ever join the two sides, and the pieces are merged
  // (and cached) separately: the result is the same, because merges on either side of such a
  // cut never interact, and a Llama 2 section without pre-tokenizer becomes word-sized pieces.
  // A cut needs both neighbours to be single-unit tokens (no unknown or byte-fallback
  // character, whose handling spans neighbours) and their pair to occur inside no vocabulary
  // token. Units are bytes for raw-byte input, code points otherwise.
  static constexpr size_t kSegmentWordsAbove = 48;  // bytes
  static constexpr uint32_t kPairTableSide = 2048;
  bool segment_long_words_ = false;
  std::vector<uint64_t> pair_table_;  // bit (a % side, b % side): a pair inside some token
  std::array<bool, 256> byte_unit_is_token_{};
  // Single-character tokens (non-raw input): a bitmap below kDenseCharLimit, a set above.
  static constexpr char32_t kDenseCharLimit = 0x30000;
  std::vector<uint64_t> dense_char_is_token_;
  std::unordered_set<char32_t> char_is_token_;

  // Word → ids, sharded by hash so that threads encoding at once rarely wait on the same lock.
  static constexpr int64_t kCacheShards = 16;
  static constexpr size_t kMaxCachedWordBytes = 1024;
  struct CacheShard {
    std::mutex mutex;
    WordCacheShard words;
  };
  bool use_cache_;
  mutable std::array<CacheShard, kCacheShards> cache_;
};

// ---- added tokens (hf_added_tokens.cpp) -----------------------------------------------------

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A section of text: either an added token (token >= 0, index into the added tokens) or text
// still to be tokenised (token == -1).
struct Section {
  Span span;
  int64_t token = -1;
};

// Leftmost-longest matcher over a set of strings (HF uses Aho-Corasick LeftmostLongest).
class TokenTrie {
 public:
  void add(std::string_view text, int64_t value);
  bool empty() const { return nodes_.size() <= 1; }
  // The leftmost string occurrence at or after `from`, the longest one starting there;
  // nullopt when none.
  struct Match {
    size_t begin;
    size_t end;
    int64_t value;
  };
  std::optional<Match> find(std::string_view text, size_t from) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int64_t value = -1;
  };
  std::vector<Node> nodes_{Node{}};
  std::array<bool, 256> first_bytes_{};
};

class AddedVocabulary {
 public:
  // `normalizer` turns the contents of `normalized` tokens into what they match.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool has_normalized_tokens() const { return !normalized_trie_.empty(); }
  // HF AddedVocabulary::find_matches with the non-normalized (`normalized == false`) or the
  // normalized token set: sections covering `text`, with lstrip/rstrip/single_word applied.
  void split(std::string_view text, bool normalized_set, std::vector<Section>* sections) const;

 private:
  std::vector<AddedToken> tokens_;
  TokenTrie raw_trie_;
  TokenTrie normalized_trie_;
};

}  // namespace gopd::tokenizer::hf
