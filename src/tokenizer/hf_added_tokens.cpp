// Added and special tokens ("<|im_start|>", "<think>", "<s>") are cut out of the text before
// normalisation and pre-tokenisation, so that no later stage can split them. This follows HF
// `tokenizers` AddedVocabulary: tokens with `normalized: false` are matched on the raw text, the
// others on each normalised section (against their normalised content); matching is
// leftmost-longest over all tokens at once; `single_word` rejects a match touching a word
// character, `lstrip`/`rstrip` pull the adjacent whitespace into the token.
#include <algorithm>

#include "tokenizer/hf_internal.h"

namespace gopd::tokenizer::hf {

// ---- trie -----------------------------------------------------------------------------------

void TokenTrie::add(std::string_view text, int64_t value) {
  if (text.empty()) return;
  int32_t node = 0;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    auto& children = nodes_[static_cast<size_t>(node)].children;
    auto it = std::lower_bound(children.begin(), children.end(), byte,
                               [](const auto& child, unsigned char b) { return child.first < b; });
    if (it != children.end() && it->first == byte) {
      node = it->second;
      continue;
    }
    auto child = static_cast<int32_t>(nodes_.size());
    children.insert(it, {byte, child});
    nodes_.push_back(Node{});  // invalidates `children`, which is not used again
    node = child;
  }
  nodes_[static_cast<size_t>(node)].value = value;  // a later duplicate wins, as in HF's map
  first_bytes_[static_cast<unsigned char>(text[0])] = true;
}

std::optional<TokenTrie::Match> TokenTrie::find(std::string_view text, size_t from) const {
  if (empty()) return std::nullopt;
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = from; i < text.size(); ++i) {
    if (!first_bytes_[bytes[i]]) continue;
    int32_t node = 0;
    std::optional<Match> best;
    for (size_t j = i; j < text.size(); ++j) {
      const auto& children = nodes_[static_cast<size_t>(node)].children;
      auto it =
          std::lower_bound(children.begin(), children.end(), bytes[j],
                           [](const auto& child, unsigned char b) { return child.first < b; });
      if (it == children.end() || it->first != bytes[j]) break;
      node = it->second;
      if (nodes_[static_cast<size_t>(node)].value >= 0) {
        best = Match{i, j + 1, nodes_[static_cast<size_t>(node)].value};
      }
    }
    if (best) return best;
  }
  return std::nullopt;
}

// ---- added vocabulary -----------------------------------------------------------------------

namespace {

// Rust regex `\w$` / `^\w` on the text around a single_word match.
bool ends_with_word(std::string_view text) {
  if (text.empty()) return false;
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return is_word_character(next_code_point(text, &start));
}

bool starts_with_word(std::string_view text) {
  if (text.empty()) return false;
  size_t position = 0;
  return is_word_character(next_code_point(text, &position));
}

// Start of the run of whitespace that ends `text` (`\s*$`).
size_t trailing_space_start(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    size_t position = start;
    if (!is_white_space(next_code_point(text, &position))) break;
    end = start;
  }
  return end;
}

// Length of the run of whitespace that starts `text` (`^\s*`).
size_t leading_space_length(std::string_view text) {
  size_t position = 0;
  while (position < text.size()) {
    size_t before = position;
    if (!is_white_space(next_code_point(text, &position))) return before;
  }
  return position;
}

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& token = tokens_[i];
    if (token.normalized) {
      std::string content = token.content;
      if (normalizer != nullptr) normalizer->normalize(&content);
      normalized_trie_.add(content, static_cast<int64_t>(i));
    } else {
      raw_trie_.add(token.content, static_cast<int64_t>(i));
    }
  }
}

void AddedVocabulary::split(std::string_view text, bool normalized_set,
                            std::vector<Section>* sections) const {
  sections->clear();
  const TokenTrie& trie = normalized_set ? normalized_trie_ : raw_trie_;
  size_t start_offset = 0;  // end of the previous token: where the pending text section begins
  size_t search_from = 0;
  while (auto match = trie.find(text, search_from)) {
    search_from = match->end;
    const AddedToken& token = tokens_[static_cast<size_t>(match->value)];
    size_t start = match->begin;
    size_t stop = match->end;
    if (token.single_word) {
      bool alone_before = start == 0 || !ends_with_word(text.substr(0, start));
      bool alone_after = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!alone_before || !alone_after) continue;
    }
    if (token.lstrip) {
      // Whitespace an earlier token already took (its rstrip) stays with that token.
      start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    }
    if (token.rstrip) {
      stop += leading_space_length(text.substr(stop));
      // HF's matcher would resume inside the whitespace just taken; no real tokenizer has an
      // added token that starts with whitespace after an rstrip token, so resume after it.
      search_from = stop;
    }
    if (start_offset < start) sections->push_back(Section{Span{start_offset, start}, -1});
    sections->push_back(Section{Span{start, stop}, match->value});
    start_offset = stop;
  }
  if (start_offset < text.size()) sections->push_back(Section{Span{start_offset, text.size()}, -1});
}

}  // namespace gopd::tokenizer::hf
