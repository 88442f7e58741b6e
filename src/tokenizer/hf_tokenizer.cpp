// Loads a Hugging Face tokenizer.json and runs its pipeline (HF `tokenizers` TokenizerImpl):
//   encode: added tokens cut out of the raw text → each remaining section normalised → added
//           tokens with `normalized: true` cut out of it → pre-tokenised into words → BPE per
//           word → post-processor's special tokens around the whole (add_special_tokens).
//   decode: ids → tokens (special ones dropped on request) → decoder chain → text.
// Departures from HF, all deliberate:
// - `truncation` and `padding` are ignored: they are length policies for batch encoding, which
//   transformers also resets per call; encode() here always returns every id.
// - decode() skips ids that have no token, as HF does, but id_to_token() rejects them (exit 2).
// - vocab_size() is the largest id + 1 (model and added tokens), the number of embedding rows a
//   model needs; HF counts distinct strings, which is the same for every real tokenizer.json.
// - Text that is not valid UTF-8 is refused (exit 2) instead of being impossible, as in Rust.
// - decode() returns an added token's content as written, also for `normalized` ones (recent
//   HF releases return the normalised form; older ones and transformers.js the content).
// - Regexes run on PCRE2 with Oniguruma's meaning; constructs the two engines read differently
//   are refused at load time (hf_regex.cpp). Left: PCRE2's `\s` also matches U+180E, and the
//   Unicode versions of PCRE2 10.42 (14.0) and ICU 72 (15.0) may classify characters that are
//   newer than both differently from HF's.
#include "gopd/tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "gopd/core/error.h"
#include "gopd/core/utf8.h"
#include "tokenizer/hf_internal.h"

namespace gopd::tokenizer {
namespace {

using hf::Json;
using hf::Source;

std::vector<hf::AddedToken> parse_added_tokens(const Json& root, const Source& source) {
  std::vector<hf::AddedToken> tokens;
  auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return tokens;
  if (!it->is_array()) hf::throw_malformed(source, "added_tokens", "an array", *it);
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& entry = (*it)[i];
    const std::string key_path = "added_tokens[" + std::to_string(i) + "]";
    hf::AddedToken token;
    token.content = hf::get_string(entry, "content", source, key_path);
    const Json& id = hf::require(entry, "id", source, key_path);
    if (!id.is_number_unsigned() || id.get<uint64_t>() > INT32_MAX) {
      hf::throw_malformed(source, key_path + ".id", "a token id (a non-negative integer)", id);
    }
    token.id = id.get<int64_t>();
    // Defaults of HF's AddedToken deserialisation.
    token.single_word = hf::get_bool(entry, "single_word", false, source, key_path);
    token.lstrip = hf::get_bool(entry, "lstrip", false, source, key_path);
    token.rstrip = hf::get_bool(entry, "rstrip", false, source, key_path);
    token.normalized = hf::get_bool(entry, "normalized", true, source, key_path);
    token.special = hf::get_bool(entry, "special", false, source, key_path);
    if (!token.content.empty()) tokens.push_back(std::move(token));  // HF ignores empty ones
  }
  return tokens;
}

class HfTokenizer final : public Tokenizer {
 public:
  // `tables`: model.vocab and model.merges as read_tokenizer_json streamed them.
  HfTokenizer(const Json& root, hf::BpeTables* tables, const Source& source,
              const HfTokenizerOptions& options)
      : source_(source) {
    if (!root.is_object()) hf::throw_malformed(source, "(top level)", "a JSON object", root);
    const Json& model = hf::require(root, "model", source, "(top level)");
    if (!model.is_object()) hf::throw_malformed(source, "model", "an object", model);
    // Files written before tokenizers 0.10 have no model type; a BPE model is told by merges.
    std::string model_type = model.contains("type") ? hf::get_string(model, "type", source, "model")
                             : model.contains("merges") ? "BPE"
                                                        : "(none)";
    if (model_type != "BPE") hf::throw_unsupported(source, "model type \"" + model_type + "\"");

    static const Json kNull;
    auto stage = [&](const char* key) -> const Json& {
      auto it = root.find(key);
      return it == root.end() ? kNull : *it;
    };
    normalizer_ = hf::parse_normalizer(stage("normalizer"), source, "normalizer");
    pre_tokenizers_ = hf::parse_pre_tokenizer(stage("pre_tokenizer"), source, "pre_tokenizer");
    if (!pre_tokenizers_.empty()) {
      if (auto* byte_level =
              dynamic_cast<hf::ByteLevelPreTokenizer*>(pre_tokenizers_.back().get())) {
        byte_level->set_map_bytes(false);
        model_maps_bytes_ = true;
      }
    }
    model_ = std::make_unique<hf::BpeModel>(model, tables, source, options.bpe_cache,
                                            options.split_long_words, model_maps_bytes_);
    post_processor_ = hf::parse_post_processor(stage("post_processor"), source, "post_processor");
    decoders_ = hf::parse_decoder(stage("decoder"), source, "decoder");

    added_ =
        std::make_unique<hf::AddedVocabulary>(parse_added_tokens(root, source), normalizer_.get());
    vocab_size_ = model_->max_id() + 1;
    const auto& tokens = added_->tokens();
    for (size_t i = 0; i < tokens.size(); ++i) {
      added_by_content_[tokens[i].content] = i;
      added_by_id_[tokens[i].id] = i;
      vocab_size_ = std::max(vocab_size_, tokens[i].id + 1);
    }
    for (int64_t id : post_processor_.prefix_ids) check_special_id(id);
    for (int64_t id : post_processor_.suffix_ids) check_special_id(id);
  }

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const override {
    if (std::optional<int64_t> bad = core::find_invalid_utf8(text)) {
      core::throw_bad_input("tokenizer " + source_.file +
                            ": text to encode is not valid UTF-8 "
                            "(first bad byte at offset " +
                            std::to_string(*bad) + ")");
    }
    std::vector<int64_t> ids;
    ids.reserve(text.size() / 3 + 8);
    if (add_special_tokens) {
      ids.insert(ids.end(), post_processor_.prefix_ids.begin(), post_processor_.prefix_ids.end());
    }
    std::vector<hf::Section> sections;
    added_->split(text, /*normalized_set=*/false, &sections);
    for (const hf::Section& section : sections) {
      if (section.token >= 0) {
        ids.push_back(added_->tokens()[static_cast<size_t>(section.token)].id);
      } else {
        encode_section(text.substr(section.span.begin, section.span.end - section.span.begin),
                       section.span.begin == 0, &ids);
      }
    }
    if (add_special_tokens) {
      ids.insert(ids.end(), post_processor_.suffix_ids.begin(), post_processor_.suffix_ids.end());
    }
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int64_t id : ids) {
      auto added = added_by_id_.find(id);
      if (added != added_by_id_.end()) {
        const hf::AddedToken& token = added_->tokens()[added->second];
        if (!(skip_special_tokens && token.special)) tokens.push_back(token.content);
        continue;
      }
      std::string_view token;
      if (model_->id_to_token(id, &token)) tokens.emplace_back(token);
    }
    if (decoders_.empty()) {  // HF joins tokens with spaces when there is no decoder
      std::string text;
      for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
      return text;
    }
    for (const auto& decoder : decoders_) decoder->decode_chain(&tokens);
    std::string text;
    for (const std::string& piece : tokens) text += piece;
    return text;
  }

  int64_t vocab_size() const override { return vocab_size_; }

  std::optional<int64_t> token_to_id(std::string_view token) const override {
    auto added = added_by_content_.find(std::string(token));
    if (added != added_by_content_.end()) return added_->tokens()[added->second].id;
    return model_->token_to_id(token);
  }

  std::string id_to_token(int64_t id) const override {
    if (id < 0 || id >= vocab_size_) {
      core::throw_bad_input("tokenizer " + source_.file + ": token id " + std::to_string(id) +
                            " is outside the vocabulary [0, " + std::to_string(vocab_size_) + ")");
    }
    auto added = added_by_id_.find(id);
    if (added != added_by_id_.end()) return added_->tokens()[added->second].content;
    std::string_view token;
    return model_->id_to_token(id, &token) ? std::string(token) : std::string();
  }

  bool is_special(int64_t id) const override {
    auto added = added_by_id_.find(id);
    return added != added_by_id_.end() && added_->tokens()[added->second].special;
  }

 private:
  void check_special_id(int64_t id) const {
    if (id >= vocab_size_) {
      hf::throw_malformed(source_, "post_processor",
                          "special token id " + std::to_string(id) + " is outside the vocabulary");
    }
  }

  // One section between added tokens: normalise, cut out normalised added tokens, then words.
  void encode_section(std::string_view raw, bool at_text_start, std::vector<int64_t>* ids) const {
    if (raw.empty()) return;
    std::string normalized(raw);
    if (normalizer_) normalizer_->normalize(&normalized);
    if (!added_->has_normalized_tokens()) {
      encode_words(normalized, at_text_start, ids);
      return;
    }
    std::vector<hf::Section> parts;
    added_->split(normalized, /*normalized_set=*/true, &parts);
    for (const hf::Section& part : parts) {
      if (part.token >= 0) {
        ids->push_back(added_->tokens()[static_cast<size_t>(part.token)].id);
      } else {
        encode_words(
            std::string_view(normalized).substr(part.span.begin, part.span.end - part.span.begin),
            at_text_start && part.span.begin == 0, ids);
      }
    }
  }

  void encode_words(std::string_view text, bool at_text_start, std::vector<int64_t>* ids) const {
    if (text.empty()) return;
    std::vector<std::string> pieces{std::string(text)};
    for (const auto& step : pre_tokenizers_) step->pre_tokenize(&pieces, at_text_start);
    for (const std::string& piece : pieces) model_->tokenize(piece, ids);
  }

  Source source_;
  std::unique_ptr<hf::BpeModel> model_;
  std::unique_ptr<hf::Normalizer> normalizer_;
  std::vector<std::unique_ptr<hf::PreTokenizer>> pre_tokenizers_;
  bool model_maps_bytes_ = false;  // the last pre-tokenizer is ByteLevel, mapping deferred
  hf::PostProcessor post_processor_;
  std::vector<std::unique_ptr<hf::Decoder>> decoders_;
  std::unique_ptr<hf::AddedVocabulary> added_;
  std::unordered_map<std::string, size_t> added_by_content_;  // → index in added_->tokens()
  std::unordered_map<int64_t, size_t> added_by_id_;
  int64_t vocab_size_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> parse_hf_tokenizer(const std::string& json_text,
                                              const std::string& source_name,
                                              const HfTokenizerOptions& options) {
  Source source{source_name};
  hf::BpeTables tables;
  Json root;
  try {
    root = hf::read_tokenizer_json(json_text, source, &tables);
  } catch (const Json::parse_error& error) {
    core::throw_bad_input(source_name + ": malformed JSON: " + error.what());
  } catch (const Json::exception& error) {  // out_of_range: a number too large for a double
    core::throw_bad_input(source_name + ": malformed JSON: " + error.what());
  }
  try {
    return std::make_unique<HfTokenizer>(root, &tables, source, options);
  } catch (const Json::exception& error) {
    // A value of an unexpected type that the checks above did not anticipate.
    core::throw_bad_input(source_name + ": unexpected tokenizer.json content: " + error.what());
  }
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json_path,
                                             const HfTokenizerOptions& options) {
  std::ifstream file(tokenizer_json_path, std::ios::binary);
  if (!file) core::throw_bad_input(tokenizer_json_path + ": cannot open tokenizer.json");
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) core::throw_bad_input(tokenizer_json_path + ": cannot read tokenizer.json");
  return parse_hf_tokenizer(text.str(), tokenizer_json_path, options);
}

}  // namespace gopd::tokenizer
