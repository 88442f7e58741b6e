// The LibTorch bridge of the safetensors checkpoint code: named torch::Tensors in and out of
// a Hugging Face model directory (model.safetensors or shards + index). The file format and
// its validation live in safetensors.h; this layer only maps dtypes and copies bytes.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gopd/model/safetensors.h"

namespace gopd::model {

// The torch dtype of a stored dtype gopd loads as weights: F32, BF16 or F16. Any other dtype
// throws Error exit 2 naming `tensor_name` and `file`.
torch::ScalarType torch_dtype(DType dtype, const std::string& tensor_name, const std::string& file);

// Loads every tensor of a model directory as a CPU tensor of its stored dtype and shape,
// copied out of the mapping (the files are closed on return). Throws Error exit 2 for a
// corrupt checkpoint or a tensor whose dtype is not F32/BF16/F16.
std::map<std::string, torch::Tensor> load_checkpoint_tensors(const std::string& directory);

// Saves named tensors with write_checkpoint (model.safetensors, or shards + index above
// `max_shard_bytes`). Tensors may live on any device and be non-contiguous: contiguous CPU
// copies are made as needed. Only F32/BF16/F16 are accepted, so that everything saved can be
// loaded back; another dtype, a sparse tensor or a duplicate name throws Error exit 2.
void save_checkpoint_tensors(const std::string& directory,
                             const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                             int64_t max_shard_bytes = kDefaultMaxShardBytes);

}  // namespace gopd::model
