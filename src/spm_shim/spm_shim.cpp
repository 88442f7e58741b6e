// A thin shared module around libsentencepiece, loaded at run time with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND) by sentencepiece_library.cpp.
//
// Why it exists: Debian's libsentencepiece bundles its own protobuf-lite and exports those
// symbols; LibTorch loads the system libprotobuf. Linked into one process the normal way,
// the two interpose each other and the process crashes during static initialisation.
// Loaded locally and deep-bound, sentencepiece resolves protobuf to its own copy and stays
// invisible to everyone else. Both sides share one libstdc++, so std types cross the
// boundary; only these extern "C" entry points are looked up by name.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace {

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

using Processor = sentencepiece::SentencePieceProcessor;
const Processor& cast(const void* handle) { return *static_cast<const Processor*>(handle); }

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* gopd_spm_load(const std::string* path_or_bytes,
                                                           bool serialized, std::string* error) {
  auto* processor = new Processor();
  const auto status = serialized ? processor->LoadFromSerializedProto(*path_or_bytes)
                                 : processor->Load(*path_or_bytes);
  if (!status.ok()) {
    *error = status.ToString();
    delete processor;
    return nullptr;
  }
  return processor;
}

__attribute__((visibility("default"))) void gopd_spm_free(void* handle) {
  delete static_cast<Processor*>(handle);
}

// Fixed facts: piece count and the bos/eos/pad/unk ids.
__attribute__((visibility("default"))) void gopd_spm_facts(const void* handle, int* facts) {
  const Processor& p = cast(handle);
  facts[0] = p.GetPieceSize();
  facts[1] = p.bos_id();
  facts[2] = p.eos_id();
  facts[3] = p.pad_id();
  facts[4] = p.unk_id();
}

// Kind of a piece: 1 control, 2 unknown, 3 byte, 0 other.
__attribute__((visibility("default"))) int gopd_spm_piece_kind(const void* handle, int id) {
  const Processor& p = cast(handle);
  if (p.IsControl(id)) return 1;
  if (p.IsUnknown(id)) return 2;
  if (p.IsByte(id)) return 3;
  return 0;
}

__attribute__((visibility("default"))) void gopd_spm_id_to_piece(const void* handle, int id,
                                                                 std::string* piece) {
  *piece = cast(handle).IdToPiece(id);
}

__attribute__((visibility("default"))) int gopd_spm_piece_to_id(const void* handle,
                                                                const std::string* piece) {
  return cast(handle).PieceToId(*piece);
}

__attribute__((visibility("default"))) bool gopd_spm_encode(const void* handle,
                                                            const std::string* text,
                                                            std::vector<int>* ids,
                                                            std::string* error) {
  const auto status = cast(handle).Encode(*text, ids);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

__attribute__((visibility("default"))) bool gopd_spm_decode(const void* handle,
                                                            const std::vector<int>* ids,
                                                            std::string* text, std::string* error) {
  const auto status = cast(handle).Decode(*ids, text);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

__attribute__((visibility("default"))) bool gopd_spm_train(
    const std::unordered_map<std::string, std::string>* arguments,
    const std::vector<std::string>* sentences, unsigned int seed, std::string* model,
    std::string* error) {
  sentencepiece::SetRandomGeneratorSeed(seed);
  SentenceList corpus(*sentences);
  const auto status = sentencepiece::SentencePieceTrainer::Train(*arguments, &corpus, model);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

}  // extern "C"
