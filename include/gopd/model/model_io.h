// Model directories in Hugging Face layout: config.json + model.safetensors (or shards +
// index) + generation_config.json + tokenizer files. Loading checks that the checkpoint's
// tensor names and shapes are exactly the model's (one error listing every difference);
// saving writes a complete directory atomically (temp directory + rename).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "gopd/model/transformer.h"

namespace gopd::model {

// Builds the model of `directory`/config.json and loads its weights in `dtype` on `device`.
Transformer load_model(const std::string& directory, torch::Dtype dtype = torch::kFloat,
                       torch::Device device = torch::kCPU);

// Copies `tensors` into the model's parameters (converting dtype). `source` names the
// checkpoint in errors. Tolerated extras: lm_head.weight of a tied model, rotary inv_freq.
void load_weights(Transformer& model, const std::map<std::string, torch::Tensor>& tensors,
                  const std::string& source);

// Hugging Face names of the tensors a checkpoint of `model` holds, in module order.
std::vector<std::string> checkpoint_tensor_names(Transformer& model);

// Writes `directory` (replacing it if present): config.json (torch_dtype = the saved dtype),
// generation_config.json, safetensors weights (shards above `max_shard_bytes`), and copies of
// the tokenizer files found in `tokenizer_directory` ("" = none). `dtype` Undefined = the
// weights' own; otherwise each tensor is converted on its way to the file.
void save_model(Transformer& model, const std::string& directory,
                const std::string& tokenizer_directory = "",
                int64_t max_shard_bytes = 5'000'000'000,
                torch::ScalarType dtype = torch::ScalarType::Undefined);

// File names treated as tokenizer files of a model directory.
inline const std::vector<std::string> kTokenizerFiles = {
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.json",     "merges.txt",      "added_tokens.json"};

}  // namespace gopd::model
