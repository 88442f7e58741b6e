// Implements the sentencepiece Tokenizer of sentencepiece_tokenizer.h: sentencepiece does
// the subword work; this file adds special-token matching, HF-style decoding of special
// tokens, appended added tokens and BOS/EOS handling.
#include "gopd/tokenizer/sentencepiece_tokenizer.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <unordered_map>
#include <utility>

#include "gopd/core/error.h"
#include "gopd/tokenizer/sentencepiece_library.h"

namespace gopd::tokenizer {
namespace {

using core::throw_bad_input;

SpmProcessor load_processor(const std::string& model_path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(model_path, error)) {
    throw_bad_input(model_path + ": no such sentencepiece model file");
  }
  return SpmProcessor::from_file(model_path);
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& model_path, const SentencePieceOptions& options)
      : processor_(load_processor(model_path)),
        add_bos_token_(options.add_bos_token),
        add_eos_token_(options.add_eos_token) {
    piece_count_ = processor_.piece_size();
    special_.assign(static_cast<size_t>(piece_count_), false);
    for (int64_t id = 0; id < piece_count_; ++id) {
      const int piece_id = static_cast<int>(id);
      // Control symbols and <unk> are what transformers counts as all_special_ids.
      if (processor_.is_control(piece_id) || processor_.is_unknown(piece_id)) {
        special_[static_cast<size_t>(id)] = true;
        add_matched_token(processor_.id_to_piece(piece_id), id);
      }
    }
    for (const std::string& token : options.special_tokens) add_added_token(token, true);
    for (const std::string& token : options.added_tokens) add_added_token(token, false);
    // Longest match first, so "<|im_start|>" wins over a shorter token that prefixes it.
    for (auto& candidates : matched_by_first_byte_) {
      std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
        return a.first.size() > b.first.size();
      });
    }
  }

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<int64_t> ids;
    if (add_special_tokens && add_bos_token_ && processor_.bos_id() >= 0) {
      ids.push_back(processor_.bos_id());
    }
    size_t segment_begin = 0;
    size_t position = 0;
    while (position < text.size()) {
      const auto& candidates = matched_by_first_byte_[static_cast<unsigned char>(text[position])];
      const std::pair<std::string, int64_t>* match = nullptr;
      for (const auto& candidate : candidates) {
        if (text.compare(position, candidate.first.size(), candidate.first) == 0) {
          match = &candidate;
          break;
        }
      }
      if (match == nullptr) {
        ++position;
        continue;
      }
      encode_plain(text.substr(segment_begin, position - segment_begin), ids);
      ids.push_back(match->second);
      position += match->first.size();
      segment_begin = position;
    }
    encode_plain(text.substr(segment_begin), ids);
    if (add_special_tokens && add_eos_token_ && processor_.eos_id() >= 0) {
      ids.push_back(processor_.eos_id());
    }
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    std::string text;
    std::vector<int> run;  // consecutive ordinary model ids, decoded together by sentencepiece
    for (const int64_t id : ids) {
      if (id < 0 || id >= vocab_size()) {
        throw_bad_input("token id " + std::to_string(id) + " is out of range [0, " +
                        std::to_string(vocab_size()) + ")");
      }
      const bool special = special_[static_cast<size_t>(id)];
      if (!special && id < piece_count_) {
        run.push_back(static_cast<int>(id));
        continue;
      }
      flush(run, text);
      if (!special || !skip_special_tokens) text += id_to_token(id);
    }
    flush(run, text);
    return text;
  }

  int64_t vocab_size() const override {
    return piece_count_ + static_cast<int64_t>(appended_.size());
  }

  std::optional<int64_t> token_to_id(std::string_view token) const override {
    if (const auto found = appended_ids_.find(std::string(token)); found != appended_ids_.end()) {
      return found->second;
    }
    const int id =
        processor_.piece_to_id(std::string(token));  // <unk>'s id when the piece is unknown
    if (id >= 0 && id < piece_count_ && processor_.id_to_piece(id) == token) return id;
    return std::nullopt;
  }

  std::string id_to_token(int64_t id) const override {
    if (id < 0 || id >= vocab_size()) {
      throw_bad_input("token id " + std::to_string(id) + " is out of range [0, " +
                      std::to_string(vocab_size()) + ")");
    }
    if (id >= piece_count_) return appended_[static_cast<size_t>(id - piece_count_)];
    return processor_.id_to_piece(static_cast<int>(id));
  }

  bool is_special(int64_t id) const override {
    return id >= 0 && id < vocab_size() && special_[static_cast<size_t>(id)];
  }

 private:
  void add_matched_token(const std::string& token, int64_t id) {
    if (token.empty()) return;
    auto& candidates = matched_by_first_byte_[static_cast<unsigned char>(token[0])];
    for (const auto& candidate : candidates) {
      if (candidate.first == token) return;
    }
    candidates.emplace_back(token, id);
  }

  // An added token the model has keeps the model's id; one it lacks is appended.
  void add_added_token(const std::string& token, bool special) {
    if (token.empty()) throw_bad_input("sentencepiece tokenizer: an added token is empty");
    std::optional<int64_t> id = token_to_id(token);
    if (!id) {
      id = vocab_size();
      appended_.push_back(token);
      appended_ids_[token] = *id;
      special_.push_back(false);
    }
    if (special) special_[static_cast<size_t>(*id)] = true;
    add_matched_token(token, *id);
  }

  void encode_plain(std::string_view text, std::vector<int64_t>& ids) const {
    if (text.empty()) return;
    const std::vector<int> piece_ids = processor_.encode(std::string(text));
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }

  void flush(std::vector<int>& run, std::string& text) const {
    if (run.empty()) return;
    text += processor_.decode(run);
    run.clear();
  }

  SpmProcessor processor_;
  int64_t piece_count_ = 0;
  std::vector<bool> special_;                              // (vocab_size)
  std::vector<std::string> appended_;                      // ids piece_count_ + i
  std::unordered_map<std::string, int64_t> appended_ids_;  // appended_[i] → piece_count_ + i
  // Tokens matched in the text before sentencepiece sees it, by first byte.
  std::array<std::vector<std::pair<std::string, int64_t>>, 256> matched_by_first_byte_;
  bool add_bos_token_ = true;
  bool add_eos_token_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(
    const std::string& model_path, std::vector<std::string> added_special_tokens) {
  SentencePieceOptions options;
  options.special_tokens = std::move(added_special_tokens);
  return load_sentencepiece_tokenizer(model_path, options);
}

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path,
                                                        const SentencePieceOptions& options) {
  return std::make_unique<SentencePieceTokenizer>(model_path, options);
}

SentencePieceSpecialIds read_sentencepiece_special_ids(const std::string& model_path) {
  const SpmProcessor processor = load_processor(model_path);
  return {processor.bos_id(), processor.eos_id(), processor.pad_id(), processor.unk_id()};
}

}  // namespace gopd::tokenizer
