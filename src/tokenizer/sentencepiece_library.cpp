// SpmProcessor and spm_train over libsentencepiece. (Next to Debian's LibTorch 1.13 this went
// through a dlopen'ed module, because sentencepiece's bundled protobuf clashed with the
// system libprotobuf LibTorch loaded; pip's LibTorch carries its own protobuf and the two link
// together directly.)
#include "gopd/tokenizer/sentencepiece_library.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <memory>

#include "gopd/core/error.h"

namespace gopd::tokenizer {
namespace {

using Processor = sentencepiece::SentencePieceProcessor;

const Processor& processor(const void* handle) { return *static_cast<const Processor*>(handle); }

void* load(const std::string& path_or_bytes, bool serialized, std::string* error) {
  auto processor = std::make_unique<Processor>();
  const auto status = serialized ? processor->LoadFromSerializedProto(path_or_bytes)
                                 : processor->Load(path_or_bytes);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return processor.release();
}

class SentenceList final : public sentencepiece::SentenceIterator {
 public:
  explicit SentenceList(const std::vector<std::string>& sentences) : sentences_(sentences) {}
  bool done() const override { return index_ >= sentences_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return sentences_[index_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& sentences_;
  size_t index_ = 0;
};

}  // namespace

SpmProcessor::SpmProcessor(void* handle) : handle_(handle) {
  const Processor& p = processor(handle_);
  facts_[0] = p.GetPieceSize();
  facts_[1] = p.bos_id();
  facts_[2] = p.eos_id();
  facts_[3] = p.pad_id();
  facts_[4] = p.unk_id();
}

SpmProcessor SpmProcessor::from_file(const std::string& path) {
  std::string error;
  void* handle = load(path, false, &error);
  if (handle == nullptr) {
    core::throw_bad_input(path + ": not a readable sentencepiece model (" + error + ")");
  }
  return SpmProcessor(handle);
}

SpmProcessor SpmProcessor::from_serialized(const std::string& bytes) {
  std::string error;
  void* handle = load(bytes, true, &error);
  if (handle == nullptr) core::throw_runtime_failure("unreadable sentencepiece model: " + error);
  return SpmProcessor(handle);
}

SpmProcessor::SpmProcessor(SpmProcessor&& other) noexcept : handle_(other.handle_) {
  std::copy(std::begin(other.facts_), std::end(other.facts_), facts_);
  other.handle_ = nullptr;
}

SpmProcessor& SpmProcessor::operator=(SpmProcessor&& other) noexcept {
  if (this != &other) {
    delete static_cast<Processor*>(handle_);
    handle_ = other.handle_;
    std::copy(std::begin(other.facts_), std::end(other.facts_), facts_);
    other.handle_ = nullptr;
  }
  return *this;
}

SpmProcessor::~SpmProcessor() { delete static_cast<Processor*>(handle_); }

bool SpmProcessor::is_control(int id) const { return processor(handle_).IsControl(id); }
bool SpmProcessor::is_unknown(int id) const { return processor(handle_).IsUnknown(id); }

std::string SpmProcessor::id_to_piece(int id) const { return processor(handle_).IdToPiece(id); }

int SpmProcessor::piece_to_id(const std::string& piece) const {
  return processor(handle_).PieceToId(piece);
}

std::vector<int> SpmProcessor::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = processor(handle_).Encode(text, &ids);
  if (!status.ok()) core::throw_runtime_failure("sentencepiece encode: " + status.ToString());
  return ids;
}

std::string SpmProcessor::decode(const std::vector<int>& ids) const {
  std::string text;
  const auto status = processor(handle_).Decode(ids, &text);
  if (!status.ok()) core::throw_runtime_failure("sentencepiece decode: " + status.ToString());
  return text;
}

std::string spm_train(const std::unordered_map<std::string, std::string>& arguments,
                      const std::vector<std::string>& sentences, unsigned int seed) {
  sentencepiece::SetRandomGeneratorSeed(seed);
  SentenceList corpus(sentences);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(arguments, &corpus, &model);
  if (!status.ok()) core::throw_bad_input(status.ToString());
  return model;
}

}  // namespace gopd::tokenizer
