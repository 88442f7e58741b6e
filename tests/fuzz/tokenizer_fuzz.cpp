// Fuzz target: Hugging Face tokenizer.json, the whole pipeline (added tokens, normalizer,
// pre-tokenizer, BPE model, post-processor, decoder). The first byte picks the mode:
//   even: the real Qwen3 or Mistral tokenizer.json (tests/assets/tokenizers/) encodes and
//         decodes the rest of the input as text;
//   odd:  the rest is "<tokenizer.json>\0<text>": a fuzzed tokenizer.json, loaded, then
//         encoding and decoding the text.
// Beyond the common invariants: ids lie in [0, vocab_size), and the fast paths (word cache,
// long-word splitting) give the same ids as the plain path.
#include <memory>

#include "fuzz_util.h"
#include "gopd/tokenizer/hf_tokenizer.h"

#ifndef GOPD_SOURCE_DIR
#error "GOPD_SOURCE_DIR must name the repository root"
#endif

namespace tok = gopd::tokenizer;

namespace {

struct Pair {
  std::string source;
  std::unique_ptr<tok::Tokenizer> fast;
  std::unique_ptr<tok::Tokenizer> plain;
};

constexpr tok::HfTokenizerOptions kPlain{false, false};

const std::vector<Pair>& real_tokenizers() {
  static const std::vector<Pair> pairs = [] {
    std::vector<Pair> loaded;
    for (const char* name : {"qwen3", "mistral"}) {
      const std::string path =
          std::string(GOPD_SOURCE_DIR) + "/tests/assets/tokenizers/" + name + "/tokenizer.json";
      loaded.push_back({path, tok::load_hf_tokenizer(path), tok::load_hf_tokenizer(path, kPlain)});
    }
    return loaded;
  }();
  return pairs;
}

void exercise(const std::string& source, const tok::Tokenizer& fast, const tok::Tokenizer* plain,
              const std::string& text, bool add_special_tokens) {
  std::vector<int64_t> ids;
  if (!gopd::fuzz::accepts(source, [&] { ids = fast.encode(text, add_special_tokens); })) return;
  for (const int64_t id : ids) {
    if (id < 0 || id >= fast.vocab_size()) gopd::fuzz::fail("id out of range: " + std::to_string(id));
  }
  // The plain path is quadratic in the word length; compare on inputs it finishes quickly.
  if (plain != nullptr && text.size() <= 1024) {
    if (plain->encode(text, add_special_tokens) != ids) {
      gopd::fuzz::fail("fast and plain paths encode differently");
    }
  }
  (void)fast.decode(ids, false);
  (void)fast.decode(ids, true);
  // Ids from the text's bytes, as a model might sample them.
  std::vector<int64_t> sampled;
  for (size_t i = 0; i + 1 < text.size() && fast.vocab_size() > 0; i += 2) {
    const auto value = static_cast<int64_t>(static_cast<uint8_t>(text[i]) << 8 |
                                            static_cast<uint8_t>(text[i + 1]));
    sampled.push_back(value % fast.vocab_size());
  }
  (void)fast.decode(sampled, false);
  for (const int64_t id : sampled) (void)fast.id_to_token(id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const bool add_special_tokens = (mode & 4) != 0;
  if ((mode & 1) == 0) {
    const Pair& pair = real_tokenizers()[(mode >> 1) % 2];
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    exercise(pair.source, *pair.fast, pair.plain.get(), text, add_special_tokens);
    return 0;
  }
  const auto parts = gopd::fuzz::split_input(data + 1, size - 1, 2);
  const std::string source = "fuzz/tokenizer.json";
  std::unique_ptr<tok::Tokenizer> fast;
  if (!gopd::fuzz::accepts(source, [&] { fast = tok::parse_hf_tokenizer(parts[0], source); })) {
    return 0;
  }
  auto plain = tok::parse_hf_tokenizer(parts[0], source, kPlain);
  exercise(source, *fast, plain.get(), parts[1], add_special_tokens);
  return 0;
}
