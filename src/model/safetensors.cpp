// Implements the safetensors reader (header validation, read-only mmap), the writer, and
// Hugging Face checkpoint directories (single file or shards + index). Plain C++: the
// LibTorch bridge lives in checkpoint_torch.cpp.
#include "gopd/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/core/utf8.h"

// The format stores every number little-endian; data is copied or mapped without swapping.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "gopd reads and writes safetensors without byte swapping: little-endian hosts only");

namespace gopd::model {
namespace {

using core::throw_bad_input;
using Json = nlohmann::json;

struct DTypeEntry {
  DType dtype;
  const char* name;
  int64_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kF64, "F64", 8}, {DType::kF32, "F32", 4},        {DType::kBF16, "BF16", 2},
    {DType::kF16, "F16", 2}, {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},        {DType::kI16, "I16", 2},
    {DType::kI8, "I8", 1},   {DType::kU64, "U64", 8},        {DType::kU32, "U32", 4},
    {DType::kU16, "U16", 2}, {DType::kU8, "U8", 1},          {DType::kBool, "BOOL", 1},
};

const DTypeEntry& dtype_entry(DType dtype) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  core::throw_runtime_failure("safetensors: invalid DType value " +
                              std::to_string(static_cast<int>(dtype)));
}

// Deeper nesting cannot be a valid header (root -> entry -> shape -> number); the limit keeps
// a hostile header from building a pathological document, with room for clear messages.
constexpr int kMaxJsonDepth = 16;
// Names are shown in messages JSON-quoted (control characters escaped) and cut to this length.
constexpr size_t kMaxShownName = 200;
// The spec's "__metadata__" key; no tensor may use it.
constexpr const char* kMetadataKey = "__metadata__";

std::string quote_name(std::string_view name) {
  const std::string shown(name.substr(0, kMaxShownName));
  // replace: a cut through a multi-byte character must not make the message invalid UTF-8.
  std::string text = Json(shown).dump(-1, ' ', false, Json::error_handler_t::replace);
  if (name.size() > kMaxShownName) text += "...";
  return text;
}

std::string type_name(const Json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  return "an object";
}

std::string join_numbers(const std::vector<int64_t>& values) {
  std::string text = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(values[i]);
  }
  return text + "]";
}

// A JSON value as a message shows it: numbers and short number arrays verbatim, else its type.
std::string describe(const Json& value) {
  if (value.is_number()) return value.dump();
  if (value.is_array() && value.size() <= 4) {
    std::string text = "[";
    for (size_t i = 0; i < value.size(); ++i) {
      if (!value[i].is_number()) return "an array holding " + type_name(value[i]);
      if (i > 0) text += ", ";
      text += value[i].dump();
    }
    return text + "]";
  }
  if (value.is_array()) return "an array of " + std::to_string(value.size()) + " elements";
  return type_name(value);
}

// A non-negative integer that fits int64_t; floats (even 3.0) are refused like the reference.
bool as_size(const Json& value, int64_t* out) {
  if (value.is_number_unsigned()) {
    const uint64_t number = value.get<uint64_t>();
    if (number > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(number);
    return true;
  }
  if (value.is_number_integer()) {
    const int64_t number = value.get<int64_t>();
    if (number < 0) return false;
    *out = number;
    return true;
  }
  return false;
}

// shape-product x element size; false on a negative dimension or 64-bit overflow. A zero
// dimension makes the size 0 whatever the others are.
bool checked_byte_size(const std::vector<int64_t>& shape, DType dtype, int64_t* bytes) {
  for (const int64_t dimension : shape) {
    if (dimension < 0) return false;
    if (dimension == 0) {
      *bytes = 0;
      return true;
    }
  }
  int64_t total = dtype_size(dtype);
  for (const int64_t dimension : shape) {
    if (__builtin_mul_overflow(total, dimension, &total)) return false;
  }
  *bytes = total;
  return true;
}

// Builds the header's DOM through nlohmann's SAX interface rather than json::parse: a syntax
// error is reported without an exception inside nlohmann (corrupt files must be cheap to
// refuse: the fuzz test feeds 100,000), and the checks below cost nothing per value.
// Duplicate tensor names are refused (json::parse keeps the last silently, and which entry a
// reader takes would then depend on the library); nesting deeper than any valid header is
// refused before a hostile file can build a pathological document.
class HeaderBuilder : public nlohmann::json_sax<Json> {
 public:
  explicit HeaderBuilder(const std::string& prefix) : prefix_(prefix) {}

  Json& root() { return root_; }
  int64_t error_byte() const { return error_byte_; }
  bool number_out_of_range() const { return number_out_of_range_; }

  bool null() override { return add(Json(nullptr)); }
  bool boolean(bool value) override { return add(Json(value)); }
  bool number_integer(number_integer_t value) override { return add(Json(value)); }
  bool number_unsigned(number_unsigned_t value) override { return add(Json(value)); }
  bool number_float(number_float_t value, const string_t&) override { return add(Json(value)); }
  bool string(string_t& value) override { return add(Json(std::move(value))); }
  bool binary(binary_t&) override { return false; }  // the JSON lexer never produces binary
  bool start_object(std::size_t) override { return open(Json::object()); }
  bool start_array(std::size_t) override { return open(Json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& name) override {
    if (open_.size() == 1 && !root_keys_.insert(name).second) {
      throw_bad_input(prefix_ +
                      (name == kMetadataKey ? "\"__metadata__\"" : "tensor " + quote_name(name)) +
                      " appears twice in the header");
    }
    key_ = std::move(name);
    return true;
  }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::json::exception& error) override {
    error_byte_ = static_cast<int64_t>(position);  // 1-based within the header text
    number_out_of_range_ = error.id == 406;        // out_of_range.406: "number overflow"
    return false;
  }

 private:
  bool add(Json value) {
    insert(std::move(value));
    return true;
  }

  Json* insert(Json value) {
    if (open_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Json& parent = *open_.back();
    if (parent.is_object()) {
      Json& slot = parent[key_];
      slot = std::move(value);
      return &slot;
    }
    parent.push_back(std::move(value));
    return &parent.back();
  }

  bool open(Json value) {
    if (static_cast<int64_t>(open_.size()) >= kMaxJsonDepth) {
      throw_bad_input(prefix_ + "header is nested more than " + std::to_string(kMaxJsonDepth) +
                      " levels deep (corrupt file?)");
    }
    // Stable while open: no sibling is added to the parent until this value closes.
    open_.push_back(insert(std::move(value)));
    return true;
  }

  bool close() {
    open_.pop_back();
    return true;
  }

  const std::string& prefix_;
  Json root_;
  std::vector<Json*> open_;  // the arrays/objects being filled, outermost first
  std::string key_;          // the key of the next value in the innermost object
  std::set<std::string> root_keys_;
  int64_t error_byte_ = 0;
  bool number_out_of_range_ = false;
};

Json parse_header_json(const uint8_t* begin, int64_t length, const std::string& prefix) {
  HeaderBuilder builder(prefix);
  if (!Json::sax_parse(begin, begin + length, &builder)) {
    if (builder.number_out_of_range()) {
      throw_bad_input(prefix + "header is not valid JSON (a number is out of range)");
    }
    throw_bad_input(prefix + "header is not valid JSON (error at byte " +
                    std::to_string(builder.error_byte()) + " of the header)");
  }
  return std::move(builder.root());
}

void parse_metadata(const Json& value, const std::string& prefix,
                    std::map<std::string, std::string>* metadata) {
  if (value.is_null()) return;  // the reference reads metadata as an optional map
  if (!value.is_object()) {
    throw_bad_input(prefix + "\"__metadata__\" must be an object of strings, got " +
                    type_name(value));
  }
  for (const auto& item : value.items()) {
    if (!item.value().is_string()) {
      throw_bad_input(prefix + "\"__metadata__\" entry " + quote_name(item.key()) +
                      " must be a string, got " + type_name(item.value()));
    }
    (*metadata)[item.key()] = item.value().get<std::string>();
  }
}

TensorInfo parse_tensor(const std::string& name, const Json& entry, const std::string& prefix,
                        int64_t data_size) {
  // Messages are built only on failure: this runs for every tensor of every file opened.
  const auto fail = [&](const std::string& detail) {
    throw_bad_input(prefix + "tensor " + quote_name(name) + ": " + detail);
  };
  if (!entry.is_object()) {
    fail("expected an object with \"dtype\", \"shape\" and \"data_offsets\", got " +
         type_name(entry));
  }
  const auto required = [&](const char* key) -> const Json& {
    const auto found = entry.find(key);
    if (found == entry.end()) fail(std::string("missing \"") + key + "\"");
    return *found;
  };
  TensorInfo info;
  info.name = name;

  const Json& dtype = required("dtype");
  if (!dtype.is_string()) fail("\"dtype\" must be a string, got " + type_name(dtype));
  if (!parse_dtype(dtype.get_ref<const std::string&>(), &info.dtype)) {
    fail("unknown dtype " + quote_name(dtype.get_ref<const std::string&>()));
  }

  const Json& shape = required("shape");
  if (!shape.is_array()) {
    fail("\"shape\" must be an array of non-negative integers, got " + type_name(shape));
  }
  info.shape.reserve(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t dimension = 0;
    if (!as_size(shape[i], &dimension)) {
      fail("shape dimension " + std::to_string(i) + " is " + describe(shape[i]) +
           ", expected a non-negative integer");
    }
    info.shape.push_back(dimension);
  }
  int64_t expected_bytes = 0;
  if (!checked_byte_size(info.shape, info.dtype, &expected_bytes)) {
    fail("shape " + join_numbers(info.shape) + " x " + dtype_name(info.dtype) +
         " exceeds 2^63 bytes");
  }

  const Json& offsets = required("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !as_size(offsets[0], &info.begin) ||
      !as_size(offsets[1], &info.end)) {
    fail("\"data_offsets\" must be [begin, end] of non-negative integers, got " +
         describe(offsets));
  }
  const auto range = [&] { return "data_offsets " + join_numbers({info.begin, info.end}); };
  if (info.begin > info.end) fail(range() + " end before they begin");
  if (info.end - info.begin != expected_bytes) {
    fail(range() + " do not match shape " + join_numbers(info.shape) + " x " +
         dtype_name(info.dtype) + " (" + std::to_string(expected_bytes) + " bytes)");
  }
  if (info.end > data_size) {
    fail(range() + " exceed the data section of " + std::to_string(data_size) +
         " bytes (truncated file?)");
  }
  return info;
}

// The spec requires the tensors to cover the data section exactly: no overlap (two tensors
// aliasing bytes), no holes and no trailing bytes (room for a second, hidden payload).
void check_coverage(std::vector<TensorInfo>* tensors, int64_t data_size,
                    const std::string& prefix) {
  std::sort(tensors->begin(), tensors->end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  const auto describe_range = [](const TensorInfo& info) {
    return "tensor " + quote_name(info.name) + " " + join_numbers({info.begin, info.end});
  };
  int64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : *tensors) {
    if (info.begin != covered) {
      const std::string where = prefix + "tensor " + quote_name(info.name) + ": data_offsets " +
                                join_numbers({info.begin, info.end});
      if (info.begin < covered) throw_bad_input(where + " overlap " + describe_range(*previous));
      if (previous == nullptr) {
        throw_bad_input(where + " leave " + std::to_string(info.begin) +
                        " unused bytes at the start of the data section");
      }
      throw_bad_input(where + " leave a gap of " + std::to_string(info.begin - covered) +
                      " bytes after " + describe_range(*previous));
    }
    covered = info.end;
    previous = &info;
  }
  if (covered != data_size) {
    throw_bad_input(prefix + "the data section is " + std::to_string(data_size) +
                    " bytes but its tensors end at byte " + std::to_string(covered) +
                    " (trailing bytes: corrupt file?)");
  }
}

// Validates what the writers are given: names unique and not reserved, shapes non-negative,
// data present. Returns each tensor's byte size.
std::vector<int64_t> validate_views(const std::vector<TensorView>& tensors,
                                    const std::string& prefix) {
  std::set<std::string_view> names;
  std::vector<int64_t> sizes;
  sizes.reserve(tensors.size());
  for (const TensorView& view : tensors) {
    const std::string where = prefix + "tensor " + quote_name(view.name) + ": ";
    if (view.name == kMetadataKey) {
      throw_bad_input(where + "the name is reserved for the header's metadata");
    }
    if (!names.insert(view.name).second) throw_bad_input(where + "listed twice");
    // The header is JSON, which holds only valid UTF-8.
    if (core::find_invalid_utf8(view.name)) throw_bad_input(where + "the name is not valid UTF-8");
    int64_t bytes = 0;
    if (!checked_byte_size(view.shape, view.dtype, &bytes)) {
      throw_bad_input(where + "shape " + join_numbers(view.shape) +
                      " has a negative dimension or exceeds 2^63 bytes");
    }
    if (bytes > 0 && view.data == nullptr)
      throw_bad_input(where + "no data for " + std::to_string(bytes) + " bytes");
    sizes.push_back(bytes);
  }
  return sizes;
}

// Writes the file; `sizes` come from validate_views.
void write_validated(const std::string& path, const std::vector<TensorView>& tensors,
                     const std::vector<int64_t>& sizes,
                     const std::map<std::string, std::string>& metadata) {
  // Element size descending, then name: every tensor starts at a multiple of its element size
  // (the data section itself starts at a multiple of 8), as with the reference writer.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int64_t size_a = dtype_size(tensors[a].dtype);
    const int64_t size_b = dtype_size(tensors[b].dtype);
    if (size_a != size_b) return size_a > size_b;
    return tensors[a].name < tensors[b].name;
  });

  // ordered_json keeps "__metadata__" first and the entries in data order, like the reference.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  nlohmann::ordered_json metadata_json = nlohmann::ordered_json::object();
  if (metadata.find("format") == metadata.end()) metadata_json["format"] = "pt";
  for (const auto& [key, value] : metadata) metadata_json[key] = value;
  header[kMetadataKey] = metadata_json;
  int64_t offset = 0;
  for (const size_t i : order) {
    const TensorView& view = tensors[i];
    header[view.name] = {{"dtype", dtype_name(view.dtype)},
                         {"shape", view.shape},
                         {"data_offsets", {offset, offset + sizes[i]}}};
    offset += sizes[i];
  }
  std::string text = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
  // Spaces up to a multiple of 8, so that the data section (at 8 + N) is 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  const uint64_t header_length = text.size();
  char length_bytes[8];
  std::memcpy(length_bytes, &header_length, sizeof(length_bytes));  // little-endian host
  core::AtomicFileWriter writer(path);
  std::ostream& stream = writer.stream();
  stream.write(length_bytes, sizeof(length_bytes));
  stream.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const size_t i : order) {
    if (sizes[i] > 0) {
      stream.write(static_cast<const char*>(tensors[i].data),
                   static_cast<std::streamsize>(sizes[i]));
    }
  }
  writer.commit();
}

std::string shard_name(int64_t index, int64_t count) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05lld-of-%05lld.safetensors",
                static_cast<long long>(index), static_cast<long long>(count));
  return name;
}

// model-NNNNN-of-NNNNN.safetensors, the names transformers gives shards.
bool is_shard_name(const std::string& name) {
  const std::string pattern = "model-#####-of-#####.safetensors";
  if (name.size() != pattern.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const bool digit = name[i] >= '0' && name[i] <= '9';
    if (pattern[i] == '#' ? !digit : name[i] != pattern[i]) return false;
  }
  return true;
}

void remove_file(const std::filesystem::path& path) {
  std::error_code error;
  std::filesystem::remove(path, error);
  if (error) {
    core::throw_runtime_failure(path.string() +
                                ": cannot remove stale checkpoint file: " + error.message());
  }
}

// Removes shards of an earlier checkpoint that the new one does not use.
void remove_stale_shards(const std::filesystem::path& directory,
                         const std::set<std::string>& keep) {
  std::error_code error;
  std::vector<std::filesystem::path> stale;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    if (is_shard_name(name) && keep.count(name) == 0) stale.push_back(entry.path());
  }
  for (const auto& path : stale) remove_file(path);
}

std::string read_text_file(const std::string& path) {
  std::ifstream input(path, std::ios::binary);
  if (!input) throw_bad_input(path + ": cannot open file");
  std::ostringstream text;
  text << input.rdbuf();
  if (input.bad()) core::throw_runtime_failure(path + ": read error");
  return text.str();
}

}  // namespace

int64_t dtype_size(DType dtype) { return dtype_entry(dtype).size; }

std::string dtype_name(DType dtype) { return dtype_entry(dtype).name; }

bool parse_dtype(std::string_view name, DType* dtype) {
  for (const DTypeEntry& entry : kDTypes) {
    if (name == entry.name) {
      *dtype = entry.dtype;
      return true;
    }
  }
  return false;
}

int64_t TensorInfo::element_count() const {
  int64_t count = 1;
  for (const int64_t dimension : shape) count *= dimension;
  return count;
}

int64_t TensorView::byte_size() const {
  int64_t bytes = 0;
  if (!checked_byte_size(shape, dtype, &bytes)) {
    throw_bad_input("tensor " + quote_name(name) + ": shape " + join_numbers(shape) +
                    " has a negative dimension or exceeds 2^63 bytes");
  }
  return bytes;
}

SafetensorsHeader parse_safetensors(const uint8_t* bytes, int64_t size,
                                    const std::string& file_name) {
  const std::string prefix = file_name + ": ";
  if (size < 8) {
    throw_bad_input(prefix + "file is " + std::to_string(size) +
                    " bytes, too short for the 8-byte header length (truncated file?)");
  }
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes, sizeof(header_length));  // little-endian host
  if (header_length > static_cast<uint64_t>(kMaxHeaderBytes)) {
    throw_bad_input(prefix + "header length " + std::to_string(header_length) +
                    " exceeds the limit of " + std::to_string(kMaxHeaderBytes) +
                    " bytes (corrupt file?)");
  }
  const int64_t header_bytes = static_cast<int64_t>(header_length);
  if (header_bytes > size - 8) {
    throw_bad_input(prefix + "header length " + std::to_string(header_bytes) + " exceeds the " +
                    std::to_string(size - 8) + " bytes after it (truncated file?)");
  }
  const Json root = parse_header_json(bytes + 8, header_bytes, prefix);
  if (!root.is_object()) {
    throw_bad_input(prefix + "header must be a JSON object, got " + type_name(root));
  }

  SafetensorsHeader header;
  header.data_offset = 8 + header_bytes;
  const int64_t data_size = size - header.data_offset;
  header.tensors.reserve(root.size());
  for (const auto& item : root.items()) {
    if (item.key() == kMetadataKey) {
      parse_metadata(item.value(), prefix, &header.metadata);
    } else {
      header.tensors.push_back(parse_tensor(item.key(), item.value(), prefix, data_size));
    }
  }
  check_coverage(&header.tensors, data_size, prefix);
  return header;
}

SafetensorsFile::SafetensorsFile(std::string path) : path_(std::move(path)) {
  const int descriptor = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) throw_bad_input(path_ + ": cannot open: " + std::strerror(errno));
  struct stat status {};
  if (::fstat(descriptor, &status) != 0) {
    const int saved = errno;
    ::close(descriptor);
    core::throw_runtime_failure(path_ + ": cannot stat: " + std::strerror(saved));
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(descriptor);
    throw_bad_input(path_ + ": not a regular file");
  }
  size_ = static_cast<int64_t>(status.st_size);
  if (size_ > 0) {
    void* address =
        ::mmap(nullptr, static_cast<size_t>(size_), PROT_READ, MAP_PRIVATE, descriptor, 0);
    if (address == MAP_FAILED) {
      const int saved = errno;
      ::close(descriptor);
      core::throw_runtime_failure(path_ + ": cannot memory-map: " + std::strerror(saved));
    }
    mapping_ = static_cast<const uint8_t*>(address);
  }
  ::close(descriptor);  // the mapping keeps the file's pages reachable
  try {
    header_ = parse_safetensors(mapping_, size_, path_);
  } catch (...) {
    if (mapping_ != nullptr) ::munmap(const_cast<uint8_t*>(mapping_), static_cast<size_t>(size_));
    throw;
  }
  for (size_t i = 0; i < header_.tensors.size(); ++i) {
    index_.emplace(header_.tensors[i].name, static_cast<int64_t>(i));
  }
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      mapping_(other.mapping_),
      size_(other.size_),
      header_(std::move(other.header_)),
      index_(std::move(other.index_)) {
  other.mapping_ = nullptr;
  other.size_ = 0;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(const_cast<uint8_t*>(mapping_), static_cast<size_t>(size_));
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto found = index_.find(name);
  return found == index_.end() ? nullptr : &header_.tensors[static_cast<size_t>(found->second)];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const {
  return mapping_ + header_.data_offset + info.begin;
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::vector<int64_t> sizes = validate_views(tensors, path + ": ");
  for (const auto& [key, value] : metadata) {
    if (core::find_invalid_utf8(key) || core::find_invalid_utf8(value)) {
      throw_bad_input(path + ": metadata entry " + quote_name(key) + " is not valid UTF-8");
    }
  }
  write_validated(path, tensors, sizes, metadata);
}

CheckpointFiles::CheckpointFiles(const std::string& directory) : directory_(directory) {
  namespace fs = std::filesystem;
  const fs::path root(directory);
  std::error_code error;
  const fs::path single = root / kSingleCheckpointFile;
  if (fs::is_regular_file(single, error)) {
    files_.emplace_back(single.string());
    const auto& tensors = files_.back().header().tensors;
    for (size_t i = 0; i < tensors.size(); ++i) {
      tensors_.emplace(tensors[i].name, Location{0, static_cast<int64_t>(i)});
    }
    return;
  }
  const std::string index_path = (root / kCheckpointIndexFile).string();
  if (!fs::is_regular_file(index_path, error)) {
    throw_bad_input(directory + ": no " + kSingleCheckpointFile + " or " + kCheckpointIndexFile +
                    " (expected a Hugging Face model directory with safetensors weights)");
  }

  Json index;
  const std::string text = read_text_file(index_path);
  try {
    index = Json::parse(text);
  } catch (const Json::parse_error& parse_error) {
    throw_bad_input(index_path + ": not valid JSON (error at byte " +
                    std::to_string(parse_error.byte) + ")");
  } catch (const Json::exception&) {
    throw_bad_input(index_path + ": not valid JSON");
  }
  if (!index.is_object())
    throw_bad_input(index_path + ": expected a JSON object, got " + type_name(index));
  const auto weight_map = index.find("weight_map");
  if (weight_map == index.end() || !weight_map->is_object()) {
    throw_bad_input(index_path + ": expected \"weight_map\": {tensor name: shard file name}");
  }

  // Shard file name -> first tensor mapped to it (for messages), in name order.
  std::map<std::string, std::string> shards;
  for (const auto& item : weight_map->items()) {
    const std::string where = index_path + ": tensor " + quote_name(item.key()) + " ";
    if (!item.value().is_string()) {
      throw_bad_input(where + "is mapped to " + type_name(item.value()) + ", expected a file name");
    }
    const std::string& file = item.value().get_ref<const std::string&>();
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
      throw_bad_input(where + "is mapped to " + quote_name(file) +
                      ", expected a file name in the same directory");
    }
    shards.emplace(file, item.key());
  }
  std::map<std::string, int64_t> file_index;
  for (const auto& [file, first_tensor] : shards) {
    const fs::path path = root / file;
    if (!fs::exists(path, error)) {
      throw_bad_input(index_path + ": tensor " + quote_name(first_tensor) + " is mapped to " +
                      file + ", which does not exist");
    }
    file_index.emplace(file, static_cast<int64_t>(files_.size()));
    files_.emplace_back(path.string());
  }

  // Both directions: a weight_map entry missing from its shard, and a shard tensor the index
  // does not know (or maps elsewhere), each mean the files and the index disagree.
  for (const auto& item : weight_map->items()) {
    const std::string& file = item.value().get_ref<const std::string&>();
    const int64_t position = file_index.at(file);
    const SafetensorsFile& shard = files_[static_cast<size_t>(position)];
    if (shard.find(item.key()) == nullptr) {
      throw_bad_input(shard.path() + ": tensor " + quote_name(item.key()) +
                      " is not in this file, but " + kCheckpointIndexFile + " maps it here");
    }
  }
  for (const auto& [file, position] : file_index) {
    const SafetensorsFile& shard = files_[static_cast<size_t>(position)];
    const auto& tensors = shard.header().tensors;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto mapped = weight_map->find(tensors[i].name);
      if (mapped == weight_map->end()) {
        throw_bad_input(shard.path() + ": tensor " + quote_name(tensors[i].name) +
                        " is not in the weight_map of " + kCheckpointIndexFile);
      }
      if (mapped->get_ref<const std::string&>() != file) {
        throw_bad_input(shard.path() + ": tensor " + quote_name(tensors[i].name) +
                        " is stored here, but " + kCheckpointIndexFile + " maps it to " +
                        mapped->get<std::string>());
      }
      tensors_.emplace(tensors[i].name, Location{position, static_cast<int64_t>(i)});
    }
  }
}

std::vector<std::string> CheckpointFiles::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& entry : tensors_) names.push_back(entry.first);
  return names;
}

bool CheckpointFiles::contains(std::string_view name) const {
  return tensors_.find(name) != tensors_.end();
}

const CheckpointFiles::Location& CheckpointFiles::locate(std::string_view name) const {
  const auto found = tensors_.find(name);
  if (found == tensors_.end()) {
    throw_bad_input(directory_ + ": the checkpoint has no tensor " + quote_name(name));
  }
  return found->second;
}

const TensorInfo& CheckpointFiles::info(std::string_view name) const {
  const Location& location = locate(name);
  return files_[static_cast<size_t>(location.file)]
      .header()
      .tensors[static_cast<size_t>(location.tensor)];
}

const uint8_t* CheckpointFiles::data(std::string_view name) const {
  const Location& location = locate(name);
  const SafetensorsFile& file = files_[static_cast<size_t>(location.file)];
  return file.data(file.header().tensors[static_cast<size_t>(location.tensor)]);
}

const std::string& CheckpointFiles::file_path(std::string_view name) const {
  return files_[static_cast<size_t>(locate(name).file)].path();
}

void CheckpointFiles::check_names(const std::vector<std::string>& expected) const {
  const std::set<std::string> wanted(expected.begin(), expected.end());
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  for (const std::string& name : wanted) {
    if (tensors_.find(name) == tensors_.end()) missing.push_back(name);
  }
  for (const auto& entry : tensors_) {
    if (wanted.count(entry.first) == 0) unexpected.push_back(entry.first);
  }
  if (missing.empty() && unexpected.empty()) return;
  const auto list = [](const std::vector<std::string>& names) {
    std::string text;
    for (size_t i = 0; i < names.size(); ++i) text += (i > 0 ? ", " : "") + quote_name(names[i]);
    return text;
  };
  std::string message = directory_ + ": checkpoint tensors do not match the model:";
  if (!missing.empty())
    message += " missing " + std::to_string(missing.size()) + ": " + list(missing);
  if (!missing.empty() && !unexpected.empty()) message += ";";
  if (!unexpected.empty()) {
    message += " unexpected " + std::to_string(unexpected.size()) + ": " + list(unexpected);
  }
  throw_bad_input(message);
}

void write_checkpoint(const std::string& directory, const std::vector<TensorView>& tensors,
                      int64_t max_shard_bytes) {
  namespace fs = std::filesystem;
  if (max_shard_bytes <= 0) {
    throw_bad_input(directory + ": max_shard_bytes must be positive, got " +
                    std::to_string(max_shard_bytes));
  }
  const std::vector<int64_t> sizes = validate_views(tensors, directory + ": ");
  const fs::path root(directory);

  // Greedy in the caller's order, as transformers does: a new shard starts when the next
  // tensor would push the current one past the limit.
  std::vector<std::vector<size_t>> shards;
  int64_t shard_bytes = 0;
  int64_t total_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (shards.empty() || (!shards.back().empty() && shard_bytes + sizes[i] > max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += sizes[i];
    total_bytes += sizes[i];
  }

  if (shards.size() <= 1) {
    write_validated((root / kSingleCheckpointFile).string(), tensors, sizes, {{"format", "pt"}});
    // The new file already takes precedence over an old index; remove the old layout.
    remove_file(root / kCheckpointIndexFile);
    remove_stale_shards(root, {});
    return;
  }

  const int64_t count = static_cast<int64_t>(shards.size());
  Json weight_map = Json::object();
  std::set<std::string> written;
  for (int64_t shard = 0; shard < count; ++shard) {
    const std::string name = shard_name(shard + 1, count);
    std::vector<TensorView> views;
    std::vector<int64_t> view_sizes;
    for (const size_t i : shards[static_cast<size_t>(shard)]) {
      views.push_back(tensors[i]);
      view_sizes.push_back(sizes[i]);
      weight_map[tensors[i].name] = name;
    }
    write_validated((root / name).string(), views, view_sizes, {{"format", "pt"}});
    written.insert(name);
  }
  // As transformers writes it: sorted keys, indent 2, trailing newline. Written after the
  // shards so that an index never names a shard that is not there yet.
  const Json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  core::write_file_atomically((root / kCheckpointIndexFile).string(), index.dump(2) + "\n");
  remove_file(root / kSingleCheckpointFile);
  remove_stale_shards(root, written);
}

}  // namespace gopd::model
