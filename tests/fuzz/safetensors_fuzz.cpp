// Fuzz target: the safetensors reader (header JSON, dtypes, shapes, offsets, coverage of the
// data section) on arbitrary bytes, and the writer on whatever the reader accepted: the file
// it writes must read back as the same tensors.
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_util.h"
#include "gopd/model/safetensors.h"

namespace model = gopd::model;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size heap copy, so that a read past the end is an ASan report.
  std::vector<uint8_t> bytes(data, data + size);
  const std::string source = "fuzz.safetensors";
  model::SafetensorsHeader header;
  const bool ok = gopd::fuzz::accepts(source, [&] {
    header = model::parse_safetensors(bytes.data(), static_cast<int64_t>(bytes.size()), source);
  });
  if (!ok) return 0;

  uint64_t checksum = 0;
  std::vector<model::TensorView> views;
  for (const auto& tensor : header.tensors) {
    if (tensor.element_count() * model::dtype_size(tensor.dtype) != tensor.byte_size()) {
      gopd::fuzz::fail("accepted tensor " + tensor.name + " whose size does not match its shape");
    }
    const int64_t begin = header.data_offset + tensor.begin;
    const int64_t end = header.data_offset + tensor.end;
    if (begin < header.data_offset || end > static_cast<int64_t>(bytes.size()) || begin > end) {
      gopd::fuzz::fail("accepted tensor " + tensor.name + " outside the file");
    }
    if (end > begin) checksum += bytes[static_cast<size_t>(begin)] + bytes[static_cast<size_t>(end - 1)];
    views.push_back({tensor.name, tensor.dtype, tensor.shape, bytes.data() + begin});
  }
  (void)checksum;

  // Round trip through the writer.
  const std::string path = gopd::fuzz::scratch_directory() + "/roundtrip.safetensors";
  auto metadata = header.metadata;
  if (!gopd::fuzz::accepts(path, [&] { model::write_safetensors(path, views, metadata); })) {
    return 0;  // names the writer refuses (e.g. "__metadata__"-like) are reported, not written
  }
  std::unique_ptr<model::SafetensorsFile> file;
  if (!gopd::fuzz::accepts(path, [&] { file = std::make_unique<model::SafetensorsFile>(path); })) {
    gopd::fuzz::fail("the writer wrote a file the reader refuses");
  }
  const model::SafetensorsFile& reread = *file;
  auto expected_metadata = header.metadata;
  expected_metadata.emplace("format", "pt");  // the writer adds it when missing
  if (reread.header().metadata != expected_metadata) gopd::fuzz::fail("round trip changed the metadata");
  const auto& again = reread.header().tensors;
  if (again.size() != header.tensors.size()) gopd::fuzz::fail("round trip changed the tensor count");
  for (const auto& tensor : header.tensors) {
    const model::TensorInfo* found = reread.find(tensor.name);
    if (found == nullptr || found->dtype != tensor.dtype || found->shape != tensor.shape ||
        found->byte_size() != tensor.byte_size()) {
      gopd::fuzz::fail("round trip changed tensor " + tensor.name);
    }
    if (tensor.byte_size() > 0 &&
        std::memcmp(reread.data(*found), bytes.data() + header.data_offset + tensor.begin,
                    static_cast<size_t>(tensor.byte_size())) != 0) {
      gopd::fuzz::fail("round trip changed the bytes of " + tensor.name);
    }
  }
  return 0;
}
