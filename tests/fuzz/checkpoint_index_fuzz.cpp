// Fuzz target: model.safetensors.index.json. The fuzzed text is the index of a scratch model
// directory that holds two valid shards ("a" in the first, "b" and "c" in the second). An
// accepted index maps tensors of those shards only (as in transformers, a shard the index does
// not name is not read), and a model that expects all three is told which are missing.
#include <filesystem>

#include "fuzz_util.h"
#include "gopd/model/safetensors.h"

namespace model = gopd::model;

namespace {

const std::string& model_directory() {
  static const std::string directory = [] {
    const std::string path = gopd::fuzz::scratch_directory() + "/model";
    std::filesystem::create_directories(path);
    static const float values[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    model::write_safetensors(path + "/model-00001-of-00002.safetensors",
                             {{"a", model::DType::kF32, {2}, values}});
    model::write_safetensors(path + "/model-00002-of-00002.safetensors",
                             {{"b", model::DType::kF32, {1}, values},
                              {"c", model::DType::kF32, {1, 1}, values + 1}});
    return path;
  }();
  return directory;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& directory = model_directory();
  gopd::fuzz::write_file(directory + "/" + model::kCheckpointIndexFile,
                         std::string_view(reinterpret_cast<const char*>(data), size));
  gopd::fuzz::accepts(directory, [&] {
    model::CheckpointFiles files(directory);
    for (const auto& name : files.names()) {
      if (name != "a" && name != "b" && name != "c") {
        gopd::fuzz::fail("an index that maps a tensor no shard holds was accepted: " + name);
      }
      (void)*files.data(name);
      (void)files.info(name).element_count();
    }
    files.check_names({"a", "b", "c"});
  });
  return 0;
}
