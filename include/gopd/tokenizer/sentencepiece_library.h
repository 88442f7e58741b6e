// sentencepiece behind a small mirror of the parts of SentencePieceProcessor and
// SentencePieceTrainer that gopd uses, so that callers do not include its headers.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

namespace gopd::tokenizer {

class SpmProcessor {
 public:
  // Throws Error (exit 2) naming `path` when it is not a readable model.
  static SpmProcessor from_file(const std::string& path);
  // Throws Error (exit 1): a serialized model gopd produced itself should always load.
  static SpmProcessor from_serialized(const std::string& bytes);
  SpmProcessor(SpmProcessor&& other) noexcept;
  SpmProcessor& operator=(SpmProcessor&& other) noexcept;
  SpmProcessor(const SpmProcessor&) = delete;
  SpmProcessor& operator=(const SpmProcessor&) = delete;
  ~SpmProcessor();

  int piece_size() const { return facts_[0]; }
  int bos_id() const { return facts_[1]; }
  int eos_id() const { return facts_[2]; }
  int pad_id() const { return facts_[3]; }
  int unk_id() const { return facts_[4]; }
  bool is_control(int id) const;
  bool is_unknown(int id) const;
  std::string id_to_piece(int id) const;
  int piece_to_id(const std::string& piece) const;         // unk_id() when unknown
  std::vector<int> encode(const std::string& text) const;  // throws Error (exit 1)
  std::string decode(const std::vector<int>& ids) const;   // throws Error (exit 1)

 private:
  explicit SpmProcessor(void* handle);
  void* handle_ = nullptr;
  int facts_[5] = {0, -1, -1, -1, -1};
};

// SentencePieceTrainer::Train on in-memory sentences with a fixed random seed; returns the
// serialized model, or throws Error (exit 2) carrying sentencepiece's message.
std::string spm_train(const std::unordered_map<std::string, std::string>& arguments,
                      const std::vector<std::string>& sentences, unsigned int seed);

}  // namespace gopd::tokenizer
