// The stages around the BPE model in a tokenizer.json pipeline — normalizers, pre-tokenizers,
// the post-processor and decoders — each a transcription of the HF `tokenizers` (Rust) component
// of the same name, for the types that byte-level BPE (GPT-2, Qwen2/3, Llama 3) and
// sentencepiece-style BPE (Llama 2, Mistral) files use. Any other type, or an option these do
// not implement, is refused at load time with the key path and type in the message.
#include <algorithm>

#include "gopd/core/error.h"
#include "tokenizer/hf_internal.h"

namespace gopd::tokenizer::hf {
namespace {

std::string index_path(const std::string& key_path, const char* key, size_t index) {
  return key_path + "." + key + "[" + std::to_string(index) + "]";
}

const Json& require_array(const Json& object, const char* key, const Source& source,
                          const std::string& key_path) {
  const Json& value = require(object, key, source, key_path);
  if (!value.is_array()) throw_malformed(source, key_path + "." + key, "an array", value);
  return value;
}

// A one-character string option (Rust `char` fields such as Metaspace.replacement).
char32_t get_char(const Json& object, const char* key, const Source& source,
                  const std::string& key_path) {
  std::string text = get_string(object, key, source, key_path);
  size_t position = 0;
  if (text.empty() || (next_code_point(text, &position), position != text.size())) {
    throw_malformed(source, key_path + "." + key, "a single character", Json(text));
  }
  position = 0;
  return next_code_point(text, &position);
}

// ---- splitting (HF NormalizedString::split and the Pattern impls) ----------------------------

using Matches = std::vector<std::pair<Span, bool>>;  // (span, is_match) pieces covering a text

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

SplitBehavior parse_behavior(const Json& config, const Source& source,
                             const std::string& key_path) {
  std::string name = get_string(config, "behavior", source, key_path);
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  throw_unsupported(source, key_path + ".behavior \"" + name + "\"");
}

// Pattern::find_matches for a character predicate: every matching character is its own match.
template <typename Predicate>
void find_character_matches(std::string_view text, Predicate is_match, Matches* matches) {
  matches->clear();
  if (text.empty()) {
    matches->push_back({Span{0, 0}, false});
    return;
  }
  size_t last_offset = 0;
  size_t position = 0;
  while (position < text.size()) {
    size_t begin = position;
    if (is_match(next_code_point(text, &position))) {
      if (last_offset < begin) matches->push_back({Span{last_offset, begin}, false});
      matches->push_back({Span{begin, position}, true});
      last_offset = position;
    }
  }
  if (last_offset < text.size()) matches->push_back({Span{last_offset, text.size()}, false});
}

// NormalizedString::split: turns matches into kept pieces according to `behavior`; empty
// pieces are dropped (PreTokenizedString::split drops them).
void split_by_behavior(std::string_view text, const Matches& matches, SplitBehavior behavior,
                       std::vector<std::string>* out) {
  Matches splits;  // (span, remove)
  splits.reserve(matches.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& [span, is_match] : matches) splits.push_back({span, false});
      break;
    case SplitBehavior::kRemoved:
      splits = matches;
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& [span, is_match] : matches) {
        if (is_match == previous_match && !splits.empty()) {
          splits.back().first.end = span.end;
        } else {
          splits.push_back({span, false});
        }
        previous_match = is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& [span, is_match] : matches) {
        if (is_match && !previous_match && !splits.empty()) {
          splits.back().first.end = span.end;
        } else {
          splits.push_back({span, false});
        }
        previous_match = is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        const auto& [span, is_match] = *it;
        if (is_match && !previous_match && !splits.empty()) {
          splits.back().first.begin = span.begin;
        } else {
          splits.push_back({span, false});
        }
        previous_match = is_match;
      }
      std::reverse(splits.begin(), splits.end());
      break;
    }
  }
  for (const auto& [span, remove] : splits) {
    if (!remove && span.end > span.begin) {
      out->emplace_back(text.substr(span.begin, span.end - span.begin));
    }
  }
}

// ---- normalizers ----------------------------------------------------------------------------

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> members)
      : members_(std::move(members)) {}
  void normalize(std::string* text) const override {
    for (const auto& member : members_) member->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> members_;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  void normalize(std::string* text) const override { unicode_normalize(form_, text); }

 private:
  NormalForm form_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prefix_);  // HF prepends to non-empty text only
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string* text) const override {
    *text = pattern_.replace_all(*text, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string* text) const override {
    size_t begin = 0;
    size_t end = text->size();
    if (left_) {
      size_t position = 0;
      while (position < end) {
        size_t before = position;
        if (!is_white_space(next_code_point(*text, &position))) {
          position = before;
          break;
        }
      }
      begin = position;
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>((*text)[start]) & 0xC0) == 0x80) {
          --start;
        }
        size_t position = start;
        if (!is_white_space(next_code_point(*text, &position))) break;
        end = start;
      }
    }
    *text = text->substr(begin, end - begin);
  }

 private:
  bool left_;
  bool right_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string* text) const override { lowercase(text); }
};

void parse_normalizer_into(const Json& config, const Source& source, const std::string& key_path,
                           std::vector<std::unique_ptr<Normalizer>>* out) {
  if (config.is_null()) return;
  std::string type = type_of(config, source, key_path);
  if (type == "Sequence") {
    const Json& members = require_array(config, "normalizers", source, key_path);
    for (size_t i = 0; i < members.size(); ++i) {
      parse_normalizer_into(members[i], source, index_path(key_path, "normalizers", i), out);
    }
  } else if (type == "NFC") {
    out->push_back(std::make_unique<UnicodeNormalizer>(NormalForm::kNfc));
  } else if (type == "NFD") {
    out->push_back(std::make_unique<UnicodeNormalizer>(NormalForm::kNfd));
  } else if (type == "NFKC") {
    out->push_back(std::make_unique<UnicodeNormalizer>(NormalForm::kNfkc));
  } else if (type == "NFKD") {
    out->push_back(std::make_unique<UnicodeNormalizer>(NormalForm::kNfkd));
  } else if (type == "Prepend") {
    out->push_back(
        std::make_unique<PrependNormalizer>(get_string(config, "prepend", source, key_path)));
  } else if (type == "Replace") {
    out->push_back(std::make_unique<ReplaceNormalizer>(
        Pattern(require(config, "pattern", source, key_path), source, key_path + ".pattern"),
        get_string(config, "content", source, key_path)));
  } else if (type == "Strip") {
    out->push_back(
        std::make_unique<StripNormalizer>(get_bool(config, "strip_left", true, source, key_path),
                                          get_bool(config, "strip_right", true, source, key_path)));
  } else if (type == "Lowercase") {
    out->push_back(std::make_unique<LowercaseNormalizer>());
  } else {
    throw_unsupported(source, key_path + " type \"" + type + "\"");
  }
}

// ---- pre-tokenizers -------------------------------------------------------------------------

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(const Json& config, const Source& source, const std::string& key_path)
      : pattern_(require(config, "pattern", source, key_path), source, key_path + ".pattern"),
        behavior_(parse_behavior(config, source, key_path)),
        invert_(get_bool(config, "invert", false, source, key_path)) {}

  void pre_tokenize(std::vector<std::string>* pieces, bool /*at_text_start*/) const override {
    std::vector<std::string> out;
    out.reserve(pieces->size() * 4);
    if (behavior_ == SplitBehavior::kIsolated) {
      // Every match and every gap is a piece, whatever `invert` says (the common case: Qwen,
      // Llama 3); skip building the (span, is_match) list.
      std::vector<Span> spans;
      for (const std::string& piece : *pieces) {
        pattern_.find_all(piece, &spans);
        size_t previous = 0;
        for (const Span& span : spans) {
          if (span.begin > previous) out.emplace_back(piece, previous, span.begin - previous);
          if (span.end > span.begin) out.emplace_back(piece, span.begin, span.end - span.begin);
          previous = span.end;
        }
        if (previous < piece.size()) out.emplace_back(piece, previous, std::string::npos);
      }
      pieces->swap(out);
      return;
    }
    Matches matches;
    for (const std::string& piece : *pieces) {
      pattern_.find_matches(piece, &matches);
      if (invert_) {
        for (auto& match : matches) match.second = !match.second;
      }
      split_by_behavior(piece, matches, behavior_, &out);
    }
    pieces->swap(out);
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual_digits) : individual_digits_(individual_digits) {}
  void pre_tokenize(std::vector<std::string>* pieces, bool /*at_text_start*/) const override {
    std::vector<std::string> out;
    Matches matches;
    for (const std::string& piece : *pieces) {
      find_character_matches(piece, is_numeric, &matches);
      split_by_behavior(piece, matches,
                        individual_digits_ ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
                        &out);
    }
    pieces->swap(out);
  }

 private:
  bool individual_digits_;
};

// WhitespaceSplit (behavior Removed on White_Space) and Punctuation (is_punc, configurable).
template <bool (*kPredicate)(char32_t)>
class CharacterSplitPreTokenizer final : public PreTokenizer {
 public:
  explicit CharacterSplitPreTokenizer(SplitBehavior behavior) : behavior_(behavior) {}
  void pre_tokenize(std::vector<std::string>* pieces, bool /*at_text_start*/) const override {
    std::vector<std::string> out;
    Matches matches;
    for (const std::string& piece : *pieces) {
      find_character_matches(piece, kPredicate, &matches);
      split_by_behavior(piece, matches, behavior_, &out);
    }
    pieces->swap(out);
  }

 private:
  SplitBehavior behavior_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

// Metaspace's prepend_scheme, with the older add_prefix_space field read the way HF reads it.
PrependScheme parse_prepend_scheme(const Json& config, const Source& source,
                                   const std::string& key_path) {
  PrependScheme scheme = PrependScheme::kAlways;
  std::optional<std::string> name = get_optional_string(config, "prepend_scheme", source, key_path);
  if (name) {
    if (*name == "always") {
      scheme = PrependScheme::kAlways;
    } else if (*name == "first") {
      scheme = PrependScheme::kFirst;
    } else if (*name == "never") {
      scheme = PrependScheme::kNever;
    } else {
      throw_unsupported(source, key_path + ".prepend_scheme \"" + *name + "\"");
    }
  }
  auto add_prefix_space = config.find("add_prefix_space");
  if (add_prefix_space != config.end() && add_prefix_space->is_boolean() &&
      !add_prefix_space->get<bool>()) {
    if (scheme != PrependScheme::kNever && name) {
      throw_malformed(source, key_path, "add_prefix_space false contradicts prepend_scheme");
    }
    scheme = PrependScheme::kNever;
  }
  return scheme;
}

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(const Json& config, const Source& source, const std::string& key_path)
      : replacement_(get_char(config, "replacement", source, key_path)),
        scheme_(parse_prepend_scheme(config, source, key_path)),
        split_(get_bool(config, "split", true, source, key_path)) {
    append_utf8(replacement_, &replacement_text_);
  }

  PrependScheme scheme() const { return scheme_; }

  void pre_tokenize(std::vector<std::string>* pieces, bool at_text_start) const override {
    std::vector<std::string> out;
    Matches matches;
    for (size_t i = 0; i < pieces->size(); ++i) {
      const std::string& piece = (*pieces)[i];
      std::string text;
      text.reserve(piece.size() + 8);
      for (char c : piece) {
        if (c == ' ') {
          text += replacement_text_;
        } else {
          text.push_back(c);
        }
      }
      bool starts_with_replacement =
          text.compare(0, replacement_text_.size(), replacement_text_) == 0;
      bool prepend = !text.empty() && !starts_with_replacement &&
                     (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && i == 0 && at_text_start));
      if (prepend) text.insert(0, replacement_text_);
      if (split_) {
        const char32_t replacement = replacement_;
        find_character_matches(
            text, [replacement](char32_t c) { return c == replacement; }, &matches);
        split_by_behavior(text, matches, SplitBehavior::kMergedWithNext, &out);
      } else if (!text.empty()) {
        out.push_back(std::move(text));
      }
    }
    pieces->swap(out);
  }

 private:
  char32_t replacement_;
  std::string replacement_text_;
  PrependScheme scheme_;
  bool split_;
};

void parse_pre_tokenizer_into(const Json& config, const Source& source, const std::string& key_path,
                              std::vector<std::unique_ptr<PreTokenizer>>* out) {
  if (config.is_null()) return;
  std::string type = type_of(config, source, key_path);
  if (type == "Sequence") {
    const Json& members = require_array(config, "pretokenizers", source, key_path);
    for (size_t i = 0; i < members.size(); ++i) {
      parse_pre_tokenizer_into(members[i], source, index_path(key_path, "pretokenizers", i), out);
    }
  } else if (type == "Split") {
    out->push_back(std::make_unique<SplitPreTokenizer>(config, source, key_path));
  } else if (type == "ByteLevel") {
    out->push_back(std::make_unique<ByteLevelPreTokenizer>(config, source, key_path));
  } else if (type == "Digits") {
    out->push_back(std::make_unique<DigitsPreTokenizer>(
        get_bool(config, "individual_digits", false, source, key_path)));
  } else if (type == "WhitespaceSplit") {
    out->push_back(
        std::make_unique<CharacterSplitPreTokenizer<is_white_space>>(SplitBehavior::kRemoved));
  } else if (type == "Punctuation") {
    SplitBehavior behavior = config.contains("behavior") ? parse_behavior(config, source, key_path)
                                                         : SplitBehavior::kIsolated;
    out->push_back(std::make_unique<CharacterSplitPreTokenizer<is_punctuation>>(behavior));
  } else if (type == "Metaspace") {
    auto metaspace = std::make_unique<MetaspacePreTokenizer>(config, source, key_path);
    // "first" needs each piece's offset in the original text; pieces are tracked only as whole
    // sections, which is exact while nothing splits before Metaspace.
    if (metaspace->scheme() == PrependScheme::kFirst && !out->empty()) {
      throw_unsupported(source, key_path +
                                    " Metaspace with prepend_scheme \"first\" after another "
                                    "pre-tokenizer");
    }
    out->push_back(std::move(metaspace));
  } else {
    throw_unsupported(source, key_path + " type \"" + type + "\"");
  }
}

// ---- decoders -------------------------------------------------------------------------------

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>* tokens) const override {
    const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
    std::string bytes;
    for (const std::string& token : *tokens) {
      // A token with a character outside the alphabet (an added token such as "<|im_end|>"
      // written with spaces or CJK) is taken as its own UTF-8 bytes, as HF does.
      size_t mark = bytes.size();
      size_t position = 0;
      bool mapped = true;
      while (position < token.size()) {
        int byte = alphabet.byte_of(next_code_point(token, &position));
        if (byte < 0) {
          mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(byte));
      }
      if (!mapped) {
        bytes.resize(mark);
        bytes += token;
      }
    }
    tokens->assign(1, utf8_lossy(bytes));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) token = pattern_.replace_all(token, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens->size());
    std::string pending;  // bytes of consecutive <0xNN> tokens
    auto flush = [&]() {
      if (pending.empty()) return;
      if (utf8_lossy(pending) == pending) {
        out.push_back(pending);
      } else {
        // HF: bytes that are not valid UTF-8 become one U+FFFD each.
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& token : *tokens) {
      int byte = parse_byte_token(token);
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens->swap(out);
  }

 private:
  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // "<0xNN>" → NN, else -1 (u8::from_str_radix accepts either case).
  static int parse_byte_token(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
    int high = hex_value(token[3]);
    int low = hex_value(token[4]);
    return high < 0 || low < 0 ? -1 : high * 16 + low;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>* tokens) const override {
    std::string fused;
    for (const std::string& token : *tokens) fused += token;
    tokens->assign(1, std::move(fused));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, int64_t start, int64_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      std::vector<size_t> offsets;  // byte offset of each character, plus the end
      std::vector<char32_t> characters;
      size_t position = 0;
      while (position < token.size()) {
        offsets.push_back(position);
        characters.push_back(next_code_point(token, &position));
      }
      offsets.push_back(token.size());
      const auto count = static_cast<int64_t>(characters.size());
      int64_t start_cut = 0;
      for (int64_t i = 0; i < std::min(start_, count); ++i) {
        if (characters[static_cast<size_t>(i)] != content_) break;
        start_cut = i + 1;
      }
      int64_t stop_cut = count;
      for (int64_t i = 0; i < std::min(stop_, count); ++i) {
        int64_t index = count - i - 1;
        if (characters[static_cast<size_t>(index)] != content_) break;
        stop_cut = index;
      }
      if (stop_cut < start_cut) stop_cut = start_cut;
      size_t begin = offsets[static_cast<size_t>(start_cut)];
      size_t end = offsets[static_cast<size_t>(stop_cut)];
      token = token.substr(begin, end - begin);
    }
  }

 private:
  char32_t content_;
  int64_t start_;
  int64_t stop_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, PrependScheme scheme)
      : replacement_(replacement), scheme_(scheme) {}
  void decode_chain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& token = (*tokens)[i];
      std::string out;
      out.reserve(token.size());
      size_t position = 0;
      while (position < token.size()) {
        size_t begin = position;
        if (next_code_point(token, &position) == replacement_) {
          // HF drops every replacement character of the first token when it prepends one.
          if (!(i == 0 && scheme_ != PrependScheme::kNever)) out.push_back(' ');
        } else {
          out.append(token, begin, position - begin);
        }
      }
      token = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  PrependScheme scheme_;
};

class BpeSuffixDecoder final : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& token = (*tokens)[i];
      std::string replacement = i + 1 == tokens->size() ? "" : " ";
      std::string out;
      size_t from = 0;
      while (!suffix_.empty()) {
        size_t at = token.find(suffix_, from);
        if (at == std::string::npos) break;
        out.append(token, from, at - from);
        out += replacement;
        from = at + suffix_.size();
      }
      out.append(token, from, std::string::npos);
      token = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

void parse_decoder_into(const Json& config, const Source& source, const std::string& key_path,
                        std::vector<std::unique_ptr<Decoder>>* out) {
  if (config.is_null()) return;
  std::string type = type_of(config, source, key_path);
  if (type == "Sequence") {
    const Json& members = require_array(config, "decoders", source, key_path);
    for (size_t i = 0; i < members.size(); ++i) {
      parse_decoder_into(members[i], source, index_path(key_path, "decoders", i), out);
    }
  } else if (type == "ByteLevel") {
    out->push_back(std::make_unique<ByteLevelDecoder>());
  } else if (type == "Replace") {
    out->push_back(std::make_unique<ReplaceDecoder>(
        Pattern(require(config, "pattern", source, key_path), source, key_path + ".pattern"),
        get_string(config, "content", source, key_path)));
  } else if (type == "ByteFallback") {
    out->push_back(std::make_unique<ByteFallbackDecoder>());
  } else if (type == "Fuse") {
    out->push_back(std::make_unique<FuseDecoder>());
  } else if (type == "Strip") {
    auto count = [&](const char* key) -> int64_t {
      const Json& value = require(config, key, source, key_path);
      if (!value.is_number_unsigned()) {
        throw_malformed(source, key_path + "." + key, "a non-negative integer", value);
      }
      return value.get<int64_t>();
    };
    out->push_back(std::make_unique<StripDecoder>(get_char(config, "content", source, key_path),
                                                  count("start"), count("stop")));
  } else if (type == "Metaspace") {
    out->push_back(
        std::make_unique<MetaspaceDecoder>(get_char(config, "replacement", source, key_path),
                                           parse_prepend_scheme(config, source, key_path)));
  } else if (type == "BPEDecoder") {
    std::optional<std::string> suffix = get_optional_string(config, "suffix", source, key_path);
    out->push_back(std::make_unique<BpeSuffixDecoder>(suffix.value_or("</w>")));
  } else {
    throw_unsupported(source, key_path + " type \"" + type + "\"");
  }
}

// ---- post-processors ------------------------------------------------------------------------

std::vector<int64_t> parse_ids(const Json& ids, const Source& source, const std::string& key_path) {
  if (!ids.is_array()) throw_malformed(source, key_path, "an array of token ids", ids);
  std::vector<int64_t> out;
  for (const Json& id : ids) {
    if (!id.is_number_unsigned()) throw_malformed(source, key_path, "token ids", ids);
    out.push_back(id.get<int64_t>());
  }
  return out;
}

// BertProcessing / RobertaProcessing: "cls": [token, id], "sep": [token, id].
int64_t parse_token_pair_id(const Json& config, const char* key, const Source& source,
                            const std::string& key_path) {
  const Json& pair = require(config, key, source, key_path);
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() ||
      !pair[1].is_number_unsigned()) {
    throw_malformed(source, key_path + "." + key, "[token, id]", pair);
  }
  return pair[1].get<int64_t>();
}

void parse_post_processor_into(const Json& config, const Source& source,
                               const std::string& key_path, PostProcessor* out) {
  if (config.is_null()) return;
  std::string type = type_of(config, source, key_path);
  PostProcessor stage;
  if (type == "ByteLevel") {
    return;  // only trims offsets, which gopd does not produce
  } else if (type == "Sequence") {
    const Json& members = require_array(config, "processors", source, key_path);
    for (size_t i = 0; i < members.size(); ++i) {
      parse_post_processor_into(members[i], source, index_path(key_path, "processors", i), out);
    }
    return;
  } else if (type == "TemplateProcessing") {
    const Json& single = require_array(config, "single", source, key_path);
    const Json empty = Json::object();
    auto special_it = config.find("special_tokens");
    const Json& special = special_it == config.end() || special_it->is_null() ? empty : *special_it;
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const Json& item = single[i];
      std::string item_path = index_path(key_path, "single", i);
      if (item.is_object() && item.contains("SpecialToken")) {
        std::string name = get_string(item["SpecialToken"], "id", source, item_path);
        auto entry = special.find(name);
        if (entry == special.end()) {
          throw_malformed(
              source, item_path,
              "special token \"" + name + "\" is not in " + key_path + ".special_tokens");
        }
        std::vector<int64_t> ids = parse_ids(require(*entry, "ids", source, key_path), source,
                                             key_path + ".special_tokens." + name);
        auto& target = seen_sequence ? stage.suffix_ids : stage.prefix_ids;
        target.insert(target.end(), ids.begin(), ids.end());
      } else if (item.is_object() && item.contains("Sequence")) {
        std::string id = get_string(item["Sequence"], "id", source, item_path);
        if (id != "A" || seen_sequence) {
          throw_malformed(source, item_path, "the single template must use sequence A once");
        }
        seen_sequence = true;
      } else {
        throw_malformed(source, item_path, "{\"SpecialToken\": ...} or {\"Sequence\": ...}", item);
      }
    }
    if (!seen_sequence) throw_malformed(source, key_path + ".single", "it has no sequence A");
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    stage.prefix_ids = {parse_token_pair_id(config, "cls", source, key_path)};
    stage.suffix_ids = {parse_token_pair_id(config, "sep", source, key_path)};
  } else {
    throw_unsupported(source, key_path + " type \"" + type + "\"");
  }
  // A later processor wraps what the earlier ones produced (HF Sequence semantics).
  out->prefix_ids.insert(out->prefix_ids.begin(), stage.prefix_ids.begin(), stage.prefix_ids.end());
  out->suffix_ids.insert(out->suffix_ids.end(), stage.suffix_ids.begin(), stage.suffix_ids.end());
}

}  // namespace

// ---- ByteLevel pre-tokenizer ----------------------------------------------------------------

ByteLevelPreTokenizer::ByteLevelPreTokenizer(const Json& config, const Source& source,
                                             const std::string& key_path)
    : add_prefix_space_(get_bool(config, "add_prefix_space", true, source, key_path)) {
  if (get_bool(config, "use_regex", true, source, key_path)) {
    // GPT-2's pattern, as HF's ByteLevel compiles it.
    regex_ = std::make_unique<Regex>(
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", source,
        key_path);
  }
}

void ByteLevelPreTokenizer::pre_tokenize(std::vector<std::string>* pieces,
                                         bool /*at_text_start*/) const {
  if (!map_bytes_ && !add_prefix_space_ && !regex_) return;  // the model maps the bytes
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  std::vector<std::string> out;
  out.reserve(pieces->size());
  std::vector<Span> matches;
  std::string prefixed;
  for (std::string& piece : *pieces) {
    std::string_view text = piece;
    if (add_prefix_space_ && !piece.empty() && piece[0] != ' ') {
      prefixed = " " + piece;
      text = prefixed;
    }
    auto emit = [&](std::string_view part) {
      if (part.empty()) return;
      if (map_bytes_) {
        std::string mapped;
        mapped.reserve(part.size() * 2);
        alphabet.append_mapped(part, &mapped);
        out.push_back(std::move(mapped));
      } else {
        out.emplace_back(part);
      }
    };
    if (regex_) {
      // Isolated split: the matches and the gaps between them are all pieces.
      regex_->find_all(text, &matches);
      size_t previous = 0;
      for (const Span& match : matches) {
        emit(text.substr(previous, match.begin - previous));
        emit(text.substr(match.begin, match.end - match.begin));
        previous = match.end;
      }
      emit(text.substr(previous));
    } else {
      emit(text);
    }
  }
  pieces->swap(out);
}

// ---- parse entry points ---------------------------------------------------------------------

std::unique_ptr<Normalizer> parse_normalizer(const Json& config, const Source& source,
                                             const std::string& key_path) {
  std::vector<std::unique_ptr<Normalizer>> members;
  parse_normalizer_into(config, source, key_path, &members);
  if (members.empty()) return nullptr;
  if (members.size() == 1) return std::move(members.front());
  return std::make_unique<SequenceNormalizer>(std::move(members));
}

std::vector<std::unique_ptr<PreTokenizer>> parse_pre_tokenizer(const Json& config,
                                                               const Source& source,
                                                               const std::string& key_path) {
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  parse_pre_tokenizer_into(config, source, key_path, &steps);
  return steps;
}

std::vector<std::unique_ptr<Decoder>> parse_decoder(const Json& config, const Source& source,
                                                    const std::string& key_path) {
  std::vector<std::unique_ptr<Decoder>> steps;
  parse_decoder_into(config, source, key_path, &steps);
  return steps;
}

PostProcessor parse_post_processor(const Json& config, const Source& source,
                                   const std::string& key_path) {
  PostProcessor processor;
  parse_post_processor_into(config, source, key_path, &processor);
  return processor;
}

}  // namespace gopd::tokenizer::hf
