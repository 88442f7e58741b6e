// The safetensors file format and Hugging Face checkpoint directories, without LibTorch.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of JSON header
// ({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}) and
// the data section; offsets are relative to the data section. The reader validates the whole
// header before anything trusts it, so a truncated or corrupt checkpoint stops with one line
// (exit 2) naming the file and the tensor at fault, never with a crash or garbage weights.
// The writer produces files that transformers and vLLM load unchanged (format "pt", header
// padded with spaces to a multiple of 8, shards + model.safetensors.index.json above
// `max_shard_bytes`).
//
// Departures from a bare reading of the spec, all matching the reference implementation:
// the data section must be covered exactly by the tensors (no holes, no overlap, no trailing
// bytes: the spec forbids holes so that files cannot be polyglots), a tensor name may appear
// once, the header is at most 100,000,000 bytes, and keys other than dtype/shape/data_offsets
// inside a tensor entry are ignored.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gopd::model {

// Every fixed-width dtype of the format, so that size checks work for any file; the torch
// bridge loads only F32, BF16 and F16 (model weights) and refuses the rest by name.
enum class DType {
  kF64,
  kF32,
  kBF16,
  kF16,
  kF8E4M3,
  kF8E5M2,
  kI64,
  kI32,
  kI16,
  kI8,
  kU64,
  kU32,
  kU16,
  kU8,
  kBool,
};

int64_t dtype_size(DType dtype);      // bytes per element
std::string dtype_name(DType dtype);  // the header spelling: "F32", "BF16", "F8_E4M3", "BOOL"
// Parses a header spelling; false if the dtype is unknown.
bool parse_dtype(std::string_view name, DType* dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t begin = 0;  // byte offsets within the data section, [begin, end)
  int64_t end = 0;

  int64_t byte_size() const { return end - begin; }
  int64_t element_count() const;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in data-section order (sorted by begin)
  std::map<std::string, std::string> metadata;
  int64_t data_offset = 0;  // 8 + N: where the data section starts in the file
};

// Largest header the reader accepts, as in the reference implementation.
constexpr int64_t kMaxHeaderBytes = 100'000'000;

// Parses and validates a whole safetensors file held in `bytes[0, size)` (usually the mmapped
// file). On success every tensor's [data_offset + begin, data_offset + end) lies inside the
// buffer. Throws core::Error (exit 2) whose message starts with `file_name`.
SafetensorsHeader parse_safetensors(const uint8_t* bytes, int64_t size,
                                    const std::string& file_name);

// A safetensors file mapped read-only into memory; tensor data is read in place.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(std::string path);  // mmap + parse_safetensors; Error exit 2
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) = delete;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const TensorInfo* find(std::string_view name) const;  // nullptr if absent
  // Start of the tensor's bytes inside the mapping; valid while this object lives. Only
  // aligned to the element size when the writer arranged it (gopd's writer does).
  const uint8_t* data(const TensorInfo& info) const;

 private:
  std::string path_;
  const uint8_t* mapping_ = nullptr;
  int64_t size_ = 0;
  SafetensorsHeader header_;
  std::map<std::string, int64_t, std::less<>> index_;  // name -> position in header_.tensors
};

// One tensor to write: the bytes at `data` are shape-product x dtype_size(dtype) long,
// contiguous, in the host's (little-endian) byte order.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;

  int64_t byte_size() const;  // Error exit 2 on a negative dimension or 64-bit overflow
};

// Writes one safetensors file atomically (temporary + rename). "format": "pt" is added to the
// metadata when the caller leaves "format" out (transformers refuses other formats). Data is
// laid out by element size descending, then by name, as the reference implementation does:
// every tensor then starts at a multiple of its element size in the file, and the bytes do
// not depend on the order the caller listed the tensors in. Throws Error exit 2 for a
// malformed request (duplicate or reserved name, negative dimension), exit 1 if I/O fails.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

constexpr const char* kSingleCheckpointFile = "model.safetensors";
constexpr const char* kCheckpointIndexFile = "model.safetensors.index.json";
// transformers' default max_shard_size="5GB" (decimal gigabytes).
constexpr int64_t kDefaultMaxShardBytes = 5'000'000'000;

// The weights of a Hugging Face model directory: model.safetensors, or the shards listed by
// model.safetensors.index.json. When both exist, model.safetensors wins, as in transformers.
// Opening validates every file and the index both ways (each weight_map entry is in the file
// it names, each tensor of a shard is in the weight_map under that shard).
class CheckpointFiles {
 public:
  explicit CheckpointFiles(const std::string& directory);

  const std::string& directory() const { return directory_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(std::string_view name) const;
  // The accessors throw Error exit 2 for a name the checkpoint lacks.
  const TensorInfo& info(std::string_view name) const;
  const uint8_t* data(std::string_view name) const;
  const std::string& file_path(std::string_view name) const;  // the file holding the tensor

  // Compares the checkpoint's tensor names with the ones the model expects and throws ONE
  // Error (exit 2) listing every missing and every unexpected name, so a user fixing a
  // conversion sees the whole difference at once.
  void check_names(const std::vector<std::string>& expected) const;

 private:
  struct Location {
    int64_t file = 0;    // index into files_
    int64_t tensor = 0;  // index into that file's header().tensors
  };
  const Location& locate(std::string_view name) const;

  std::string directory_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, Location, std::less<>> tensors_;
};

// Writes model.safetensors when the tensors' bytes total at most `max_shard_bytes`, else
// shards model-00001-of-0000K.safetensors + model.safetensors.index.json (metadata
// {"total_size": bytes}), as transformers' save_pretrained does. Shards are filled greedily in
// the caller's order (a tensor larger than the limit gets a shard of its own). Each file is
// atomic; the index is written after the shards, and files of an earlier checkpoint in the
// other layout (or stale shards) are removed afterwards, so a reader never sees a mix.
void write_checkpoint(const std::string& directory, const std::vector<TensorView>& tensors,
                      int64_t max_shard_bytes = kDefaultMaxShardBytes);

}  // namespace gopd::model
