// The BPE model of tokenizer.json, after HF `tokenizers` models/bpe (model.rs, word.rs): a word
// starts as one symbol per character (or per byte, through byte_fallback's <0xNN> tokens, or as
// the unknown token), then the adjacent pair with the lowest merge rank is merged, leftmost
// first, until no pair has a merge. The pair queue makes a word of n symbols cost O(n log n), so
// pathological pre-tokens (a 100 kB run of letters) stay cheap. Results are memoised per word; the
// cache is an optimisation only, and the uncached path stays selectable (HfTokenizerOptions) so
// tests can compare the two.
#include <algorithm>
#include <queue>

#include "gopd/core/error.h"
#include "tokenizer/hf_internal.h"

namespace gopd::tokenizer::hf {
namespace {

size_t capacity_for(size_t count) {
  size_t capacity = 16;
  while (capacity < 2 * count) capacity *= 2;  // load factor <= 1/2
  return capacity;
}

uint64_t mix(uint64_t key) {  // splitmix64's finaliser: spreads pair keys over the table
  key ^= key >> 30;
  key *= 0xbf58476d1ce4e5b9ULL;
  key ^= key >> 27;
  key *= 0x94d049bb133111ebULL;
  return key ^ (key >> 31);
}

}  // namespace

// ---- StringIdMap ----------------------------------------------------------------------------

void StringIdMap::reserve(size_t count) {
  if (capacity_for(count) <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity_for(count), Slot{});
  for (const Slot& slot : old) {
    if (slot.hash == 0) continue;
    slots_[slot_of(std::string_view(arena_).substr(slot.offset, slot.length), slot.hash)] = slot;
  }
}

size_t StringIdMap::slot_of(std::string_view key, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  size_t i = (hash >> 8) & mask;
  while (slots_[i].hash != 0 &&
         !(slots_[i].hash == hash && slots_[i].length == key.size() &&
           std::string_view(arena_).substr(slots_[i].offset, slots_[i].length) == key)) {
    i = (i + 1) & mask;
  }
  return i;
}

void StringIdMap::set(std::string_view key, int32_t id) {
  if (2 * (size_ + 1) > slots_.size()) reserve(std::max<size_t>(2 * size_, 16));
  uint64_t hash = std::hash<std::string_view>{}(key) | 1;
  Slot& slot = slots_[slot_of(key, hash)];
  if (slot.hash == 0) {
    slot = Slot{hash, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), id};
    arena_.append(key);
    ++size_;
  } else {
    slot.id = id;
  }
}

int32_t StringIdMap::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  return slots_[slot_of(key, std::hash<std::string_view>{}(key) | 1)].id;
}

// ---- MergeMap -------------------------------------------------------------------------------

void BpeModel::MergeMap::reserve(size_t count) { slots_.assign(capacity_for(count), Slot{}); }

size_t BpeModel::MergeMap::slot_of(uint64_t key) const {
  const size_t mask = slots_.size() - 1;
  size_t i = mix(key) & mask;
  while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask;
  return i;
}

void BpeModel::MergeMap::set(uint64_t key, Merge merge) {
  Slot& slot = slots_[slot_of(key)];  // reserve() was called for every merge
  slot.key = key;
  slot.merge = merge;
}

const BpeModel::Merge* BpeModel::MergeMap::find(uint64_t key) const {
  if (slots_.empty()) return nullptr;
  const Slot& slot = slots_[slot_of(key)];
  return slot.key == kEmpty ? nullptr : &slot.merge;
}

// ---- loading --------------------------------------------------------------------------------

BpeModel::BpeModel(const Json& config, BpeTables* tables, const Source& source, bool use_cache,
                   bool split_long_words, bool raw_bytes_input)
    : raw_bytes_input_(raw_bytes_input), use_cache_(use_cache) {
  const std::string key_path = "model";
  auto dropout = config.find("dropout");
  if (dropout != config.end() && !dropout->is_null()) {
    if (!dropout->is_number()) throw_malformed(source, "model.dropout", "a number", *dropout);
    if (dropout->get<double>() != 0.0) {
      throw_unsupported(
          source, "model.dropout " + describe(*dropout) + " (BPE dropout makes encoding random)");
    }
  }
  std::optional<std::string> unk_token = get_optional_string(config, "unk_token", source, key_path);
  continuing_subword_prefix_ =
      get_optional_string(config, "continuing_subword_prefix", source, key_path).value_or("");
  end_of_word_suffix_ =
      get_optional_string(config, "end_of_word_suffix", source, key_path).value_or("");
  fuse_unk_ = get_bool(config, "fuse_unk", false, source, key_path);
  byte_fallback_ = get_bool(config, "byte_fallback", false, source, key_path);
  ignore_merges_ = get_bool(config, "ignore_merges", false, source, key_path);

  load_vocab(config, tables, source);
  if (unk_token) {
    // HF accepts an unk_token missing from the vocabulary and fails only when a word needs it
    // (byte-level models never do), so the check waits until then.
    unk_id_ = vocab_.find(*unk_token);
    if (unk_id_ < 0) {
      missing_unk_message_ = source.file + ": model.unk_token \"" + *unk_token +
                             "\" is not in model.vocab, and the text needs it";
    }
  }
  for (int byte = 0; byte < 256; ++byte) {
    static const char kHex[] = "0123456789ABCDEF";
    const char name[] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
    byte_fallback_ids_[static_cast<size_t>(byte)] = vocab_.find(std::string_view(name, 6));
  }
  load_merges(config, tables, source);
  if (split_long_words) build_segmentation();
}

void BpeModel::load_vocab(const Json& config, BpeTables* tables, const Source& source) {
  if (tables != nullptr && tables->has_vocab) {
    vocab_ = std::move(tables->vocab);
  } else {
    const Json& vocab = require(config, "vocab", source, "model");
    if (!vocab.is_object()) {
      throw_malformed(source, "model.vocab", "an object of token → id", vocab);
    }
    vocab_.reserve(vocab.size());
    for (const auto& [token, id] : vocab.items()) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() > INT32_MAX) {
        throw_malformed(source, "model.vocab." + token, "a token id (a non-negative integer)", id);
      }
      vocab_.set(token, static_cast<int32_t>(id.get<uint64_t>()));
    }
  }
  int32_t max_id = -1;
  size_t text_bytes = 0;
  std::string_view max_token;  // into vocab_, which outlives the check
  size_t entries = 0;
  vocab_.for_each([&](std::string_view token, int32_t id) {
    if (id > max_id) {
      max_id = id;
      max_token = token;
    }
    text_bytes += token.size();
    ++entries;
  });
  // Ids index a table (and set the vocabulary size): a stray huge id would cost gigabytes (found
  // by fuzzing: one id near 2^31 made the loader allocate 16 GiB). Real files number their
  // tokens 0 … N−1; gaps up to four times the entries are tolerated.
  const int64_t id_limit = 4 * static_cast<int64_t>(entries) + 65536;
  if (max_id >= id_limit) {
    core::throw_bad_input(source.file + ": model.vocab: token \"" + std::string(max_token) + "\" has id " +
                          std::to_string(max_id) + ", far beyond the " + std::to_string(entries) +
                          " tokens of the vocabulary (ids are expected to run 0 … N-1)");
  }
  token_spans_.assign(static_cast<size_t>(max_id + 1), {kNoToken, 0});
  token_arena_.reserve(text_bytes);
  // Two tokens with one id are refused: merges are keyed by id pairs (in HF tokenizers too), so
  // a merge of one token would also apply to the other, and decoding could not tell them apart
  // (found by fuzzing: the fast and plain paths then disagreed).
  vocab_.for_each([&](std::string_view token, int32_t id) {
    auto& span = token_spans_[static_cast<size_t>(id)];
    if (span.first != kNoToken) {
      const std::string other = token_arena_.substr(span.first, span.second);
      core::throw_bad_input(source.file + ": model.vocab: tokens \"" + other + "\" and \"" +
                            std::string(token) + "\" both have id " + std::to_string(id) +
                            "; each id must name one token");
    }
    span = {static_cast<uint32_t>(token_arena_.size()), static_cast<uint32_t>(token.size())};
    token_arena_.append(token);
  });
}

void BpeModel::load_merges(const Json& config, BpeTables* tables, const Source& source) {
  // Merges: "left right" strings (older files) or ["left", "right"] pairs (tokenizers >= 0.20,
  // which can hold tokens containing spaces). A later duplicate pair replaces an earlier one, as
  // in HF's HashMap.
  std::vector<std::pair<std::string, std::string>> dom_merges;
  const std::vector<std::pair<std::string, std::string>>* merges = &dom_merges;
  if (tables != nullptr && tables->has_merges) {
    merges = &tables->merges;
  } else {
    const Json& list = require(config, "merges", source, "model");
    if (!list.is_array()) throw_malformed(source, "model.merges", "an array", list);
    for (size_t rank = 0; rank < list.size(); ++rank) {
      const Json& merge = list[rank];
      const std::string merge_path = "model.merges[" + std::to_string(rank) + "]";
      if (merge.is_string()) {
        const auto& line = merge.get_ref<const std::string&>();
        size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
          throw_malformed(source, merge_path, "\"left right\" (exactly one space)", merge);
        }
        dom_merges.emplace_back(line.substr(0, space), line.substr(space + 1));
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
                 merge[1].is_string()) {
        dom_merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
      } else {
        throw_malformed(source, merge_path, "\"left right\" or [\"left\", \"right\"]", merge);
      }
    }
  }
  merges_.reserve(merges->size());
  std::string merged;
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const auto& [left, right] = (*merges)[rank];
    auto find = [&](std::string_view token) {
      int32_t id = vocab_.find(token);
      if (id < 0) {
        throw_malformed(source, "model.merges[" + std::to_string(rank) + "]",
                        "token \"" + std::string(token) + "\" is not in model.vocab");
      }
      return id;
    };
    int32_t left_id = find(left);
    int32_t right_id = find(right);
    if (right.size() < continuing_subword_prefix_.size()) {
      throw_malformed(source, "model.merges[" + std::to_string(rank) + "]",
                      "right token shorter than continuing_subword_prefix");
    }
    merged.assign(left);
    merged.append(right, continuing_subword_prefix_.size(), std::string::npos);
    merges_.set(pair_key(left_id, right_id), Merge{static_cast<int32_t>(rank), find(merged)});
  }
  if (tables != nullptr) tables->merges = {};
}

void BpeModel::build_segmentation() {
  // Cutting is exact only when every merge joins plain text units: no word prefix/suffix, no
  // whole-word lookup (ignore_merges), no merge of the unknown or a byte-fallback token.
  segment_long_words_ =
      continuing_subword_prefix_.empty() && end_of_word_suffix_.empty() && !ignore_merges_;
  merges_.for_each([&](uint64_t pair, const Merge&) {
    for (int32_t id : {static_cast<int32_t>(pair >> 32), static_cast<int32_t>(pair & 0xFFFFFFFF)}) {
      if (id == unk_id_ || std::find(byte_fallback_ids_.begin(), byte_fallback_ids_.end(), id) !=
                               byte_fallback_ids_.end()) {
        segment_long_words_ = false;
      }
    }
  });
  if (!segment_long_words_) return;

  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  pair_table_.assign(kPairTableSide * kPairTableSide / 64, 0);
  dense_char_is_token_.assign(kDenseCharLimit / 64, 0);
  std::vector<char32_t> units;
  vocab_.for_each([&](std::string_view token, int32_t) {
    units.clear();
    size_t position = 0;
    while (position < token.size()) {
      char32_t c = next_code_point(token, &position);
      if (raw_bytes_input_) {
        int byte = alphabet.byte_of(c);
        if (byte < 0) return;  // cannot come out of byte-level input, so cannot constrain it
        c = static_cast<char32_t>(byte);
      }
      units.push_back(c);
    }
    if (units.size() == 1) {
      char32_t unit = units[0];
      if (raw_bytes_input_) {
        byte_unit_is_token_[unit] = true;
      } else if (unit < kDenseCharLimit) {
        dense_char_is_token_[unit / 64] |= uint64_t{1} << (unit % 64);
      } else {
        char_is_token_.insert(unit);
      }
    }
    for (size_t i = 0; i + 1 < units.size(); ++i) {
      uint64_t bit = static_cast<uint64_t>(units[i] % kPairTableSide) * kPairTableSide +
                     units[i + 1] % kPairTableSide;
      pair_table_[bit / 64] |= uint64_t{1} << (bit % 64);
    }
  });
}

bool BpeModel::is_unit_token(char32_t unit) const {
  if (raw_bytes_input_) return byte_unit_is_token_[unit];
  if (unit < kDenseCharLimit) return (dense_char_is_token_[unit / 64] >> (unit % 64)) & 1;
  return char_is_token_.count(unit) != 0;
}

bool BpeModel::pair_may_merge(char32_t left, char32_t right) const {
  // Units are folded modulo the table side, so a set bit may stand for another pair: that only
  // forgoes a cut, never makes a wrong one.
  uint64_t bit =
      static_cast<uint64_t>(left % kPairTableSide) * kPairTableSide + right % kPairTableSide;
  return (pair_table_[bit / 64] >> (bit % 64)) & 1;
}

// ---- lookups --------------------------------------------------------------------------------

std::optional<int64_t> BpeModel::token_to_id(std::string_view token) const {
  int32_t id = vocab_.find(token);
  if (id < 0) return std::nullopt;
  return id;
}

bool BpeModel::id_to_token(int64_t id, std::string_view* token) const {
  if (id < 0 || id >= static_cast<int64_t>(token_spans_.size())) return false;
  const auto& [offset, length] = token_spans_[static_cast<size_t>(id)];
  if (offset == kNoToken) return false;
  *token = std::string_view(token_arena_).substr(offset, length);
  return true;
}

// ---- encoding -------------------------------------------------------------------------------

void BpeModel::tokenize(std::string_view word, std::vector<int64_t>* ids) const {
  if (word.empty()) return;
  if (!segment_long_words_ || word.size() <= kSegmentWordsAbove) {
    tokenize_word(word, ids);
    return;
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(word.data());
  size_t segment_start = 0;
  size_t position = 0;
  char32_t previous = 0;
  bool previous_is_token = false;
  while (position < word.size()) {
    size_t unit_start = position;
    char32_t unit;
    if (raw_bytes_input_) {
      unit = bytes[position++];
    } else {
      unit = next_code_point(word, &position);
    }
    bool unit_is_token = is_unit_token(unit);
    if (unit_start > segment_start && previous_is_token && unit_is_token &&
        !pair_may_merge(previous, unit)) {
      tokenize_word(word.substr(segment_start, unit_start - segment_start), ids);
      segment_start = unit_start;
    }
    previous = unit;
    previous_is_token = unit_is_token;
  }
  tokenize_word(word.substr(segment_start), ids);
}

void BpeModel::tokenize_word(std::string_view word, std::vector<int64_t>* ids) const {
  CacheShard* shard = nullptr;
  uint64_t hash = 0;
  if (use_cache_ && word.size() < kMaxCachedWordBytes) {
    hash = std::hash<std::string_view>{}(word);
    shard = &cache_[(hash >> 60) % kCacheShards];
    std::lock_guard<std::mutex> lock(shard->mutex);
    if (shard->words.find(word, hash, ids)) return;
  }
  std::string mapped;
  std::string_view text = word;
  if (raw_bytes_input_) {
    mapped.reserve(word.size() * 2);
    ByteLevelAlphabet::get().append_mapped(word, &mapped);
    text = mapped;
  }
  std::vector<int32_t> word_ids;
  bool whole = false;
  if (ignore_merges_) {
    // Llama 3: a pre-token that is itself a vocabulary entry is that entry, whatever the merges.
    int32_t id = vocab_.find(text);
    if (id >= 0) {
      word_ids.push_back(id);
      whole = true;
    }
  }
  if (!whole) merge_word(text, &word_ids);
  ids->insert(ids->end(), word_ids.begin(), word_ids.end());
  if (shard != nullptr) {
    std::lock_guard<std::mutex> lock(shard->mutex);
    shard->words.insert(word, hash, word_ids);
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>* ids) const {
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  bool pending_unk = false;  // an unknown run not yet emitted (HF's `unk`)
  std::string piece;
  size_t position = 0;
  while (position < word.size()) {
    size_t begin = position;
    position +=
        static_cast<size_t>(utf8_sequence_length(static_cast<unsigned char>(word[position])));
    piece.assign(word.substr(begin, position - begin));
    if (begin > 0 && !continuing_subword_prefix_.empty())
      piece.insert(0, continuing_subword_prefix_);
    if (position >= word.size() && !end_of_word_suffix_.empty()) piece += end_of_word_suffix_;

    int32_t id = vocab_.find(piece);
    if (id >= 0) {
      if (pending_unk) {
        symbols.push_back(unk_id_);
        pending_unk = false;
      }
      symbols.push_back(id);
      continue;
    }
    if (byte_fallback_) {
      bool covered = std::all_of(piece.begin(), piece.end(), [&](char byte) {
        return byte_fallback_ids_[static_cast<unsigned char>(byte)] >= 0;
      });
      if (covered) {
        // As in HF, byte tokens do not flush a pending unknown first; with a full <0x00>..<0xFF>
        // set (every real byte-fallback vocabulary) no unknown can be pending here.
        for (char byte : piece)
          symbols.push_back(byte_fallback_ids_[static_cast<unsigned char>(byte)]);
        continue;
      }
    }
    if (!missing_unk_message_.empty()) core::throw_bad_input(missing_unk_message_);
    if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) symbols.push_back(unk_id_);
      pending_unk = true;
    }
    // Without an unk_token HF drops the character; so does gopd.
  }
  if (pending_unk) symbols.push_back(unk_id_);
  apply_merges(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
}

void BpeModel::apply_merges(std::vector<int32_t>* symbols) const {
  const auto count = static_cast<int32_t>(symbols->size());
  if (count < 2) return;
  struct Node {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  struct Candidate {
    int32_t rank;
    int32_t position;
    int32_t new_id;
  };
  // Lowest rank first; among equal ranks the leftmost pair (HF Word::merge_all).
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.position > b.position;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
  std::vector<Node> nodes(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    nodes[static_cast<size_t>(i)] =
        Node{(*symbols)[static_cast<size_t>(i)], i - 1, i + 1 < count ? i + 1 : -1, true};
  }
  auto push_pair = [&](int32_t position) {
    const Node& left = nodes[static_cast<size_t>(position)];
    if (left.next < 0) return;
    const Merge* merge = merges_.find(pair_key(left.id, nodes[static_cast<size_t>(left.next)].id));
    if (merge != nullptr) queue.push(Candidate{merge->rank, position, merge->new_id});
  };
  for (int32_t i = 0; i + 1 < count; ++i) push_pair(i);

  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Node& left = nodes[static_cast<size_t>(top.position)];
    if (!left.alive || left.next < 0) continue;
    Node& right = nodes[static_cast<size_t>(left.next)];
    // Skip stale entries: the pair at this position has changed since it was queued.
    const Merge* merge = merges_.find(pair_key(left.id, right.id));
    if (merge == nullptr || merge->new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) nodes[static_cast<size_t>(right.next)].prev = top.position;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.position);
  }
  symbols->clear();
  for (int32_t i = 0; i >= 0; i = nodes[static_cast<size_t>(i)].next) {
    symbols->push_back(nodes[static_cast<size_t>(i)].id);
  }
}

// ---- word cache -----------------------------------------------------------------------------

bool WordCacheShard::find(std::string_view word, uint64_t hash, std::vector<int64_t>* ids) const {
  if (slots_.empty()) return false;
  const size_t mask = slots_.size() - 1;
  size_t start = (hash >> 8) & mask;
  hash |= 1;
  for (size_t i = start;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.hash == 0) return false;
    if (slot.hash == hash && slot.word_length == word.size() &&
        std::string_view(words_).substr(slot.word_offset, slot.word_length) == word) {
      ids->insert(ids->end(), ids_.begin() + slot.ids_offset,
                  ids_.begin() + slot.ids_offset + slot.ids_count);
      return true;
    }
  }
}

void WordCacheShard::insert(std::string_view word, uint64_t hash, const std::vector<int32_t>& ids) {
  if (size_ >= kMaxEntries || static_cast<int64_t>(words_.size() + word.size()) > kMaxWordBytes) {
    return;
  }
  if (slots_.empty()) slots_.resize(2 * kMaxEntries);  // load factor stays <= 1/2
  const size_t mask = slots_.size() - 1;
  size_t i = (hash >> 8) & mask;
  hash |= 1;
  for (; slots_[i].hash != 0; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.hash == hash && slot.word_length == word.size() &&
        std::string_view(words_).substr(slot.word_offset, slot.word_length) == word) {
      return;  // another thread stored it meanwhile
    }
  }
  slots_[i] = Slot{hash, static_cast<uint32_t>(words_.size()), static_cast<uint32_t>(word.size()),
                   static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(ids.size())};
  words_.append(word);
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  ++size_;
}

}  // namespace gopd::tokenizer::hf
