// Implements the LibTorch bridge: torch::Tensor <-> safetensors checkpoint directories.
#include "gopd/model/checkpoint.h"

#include <cstring>

#include "gopd/core/error.h"

namespace gopd::model {
namespace {

// The stored dtype of a torch dtype that may be saved; false for the rest.
bool stored_dtype(torch::ScalarType type, DType* dtype) {
  switch (type) {
    case torch::kFloat:
      *dtype = DType::kF32;
      return true;
    case torch::kBFloat16:
      *dtype = DType::kBF16;
      return true;
    case torch::kHalf:
      *dtype = DType::kF16;
      return true;
    default:
      return false;
  }
}

}  // namespace

torch::ScalarType torch_dtype(DType dtype, const std::string& tensor_name,
                              const std::string& file) {
  switch (dtype) {
    case DType::kF32:
      return torch::kFloat;
    case DType::kBF16:
      return torch::kBFloat16;
    case DType::kF16:
      return torch::kHalf;
    default:
      core::throw_bad_input(file + ": tensor \"" + tensor_name + "\" has dtype " +
                            dtype_name(dtype) + "; gopd loads only F32, BF16 and F16 weights");
  }
}

std::map<std::string, torch::Tensor> load_checkpoint_tensors(const std::string& directory) {
  const CheckpointFiles files(directory);
  std::map<std::string, torch::Tensor> tensors;
  for (const std::string& name : files.names()) {
    const TensorInfo& info = files.info(name);
    const torch::ScalarType type = torch_dtype(info.dtype, name, files.file_path(name));
    // A copy rather than from_blob on the mapping: the mapping dies with `files`, and a
    // third-party file need not align tensors to their element size.
    torch::Tensor tensor =
        torch::empty(info.shape, torch::TensorOptions().dtype(type));  // shape as stored
    if (info.byte_size() > 0) {
      std::memcpy(tensor.data_ptr(), files.data(name), static_cast<size_t>(info.byte_size()));
    }
    tensors.emplace(name, std::move(tensor));
  }
  return tensors;
}

void save_checkpoint_tensors(const std::string& directory,
                             const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                             int64_t max_shard_bytes) {
  torch::NoGradGuard no_grad;
  // Contiguous CPU copies (a no-op for tensors already so) kept alive while writing.
  std::vector<torch::Tensor> host;
  std::vector<TensorView> views;
  host.reserve(tensors.size());
  views.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    const std::string where = directory + ": tensor \"" + name + "\": ";
    if (!tensor.defined()) core::throw_bad_input(where + "undefined tensor");
    if (tensor.layout() != torch::kStrided)
      core::throw_bad_input(where + "only dense tensors can be saved");
    TensorView view;
    if (!stored_dtype(tensor.scalar_type(), &view.dtype)) {
      core::throw_bad_input(where + "dtype " + std::string(c10::toString(tensor.scalar_type())) +
                            " cannot be saved; gopd saves only F32, BF16 and F16 weights");
    }
    host.push_back(tensor.detach().to(torch::kCPU).contiguous());
    view.name = name;
    view.shape = host.back().sizes().vec();
    view.data = host.back().data_ptr();
    views.push_back(std::move(view));
  }
  write_checkpoint(directory, views, max_shard_bytes);
}

}  // namespace gopd::model
