// Implements loading and atomic saving of Hugging Face model directories.
#include "gopd/model/model_io.h"

#include <unistd.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/model/checkpoint.h"

namespace gopd::model {
namespace {

std::string dtype_config_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kHalf:
      return "float16";
    default:
      return "float32";
  }
}

bool is_ignorable_extra(const std::string& name, bool tied) {
  if (tied && name == "lm_head.weight") return true;
  const std::string suffix = "rotary_emb.inv_freq";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<std::string> checkpoint_tensor_names(Transformer& model) {
  std::vector<std::string> names;
  for (const auto& item : model->named_parameters()) names.push_back(item.key());
  return names;
}

void load_weights(Transformer& model, const std::map<std::string, torch::Tensor>& tensors,
                  const std::string& source) {
  torch::NoGradGuard no_grad;
  const bool tied = model->config().tie_word_embeddings;
  auto parameters = model->named_parameters();
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::vector<std::string> mismatched;
  for (const auto& item : parameters) {
    const auto found = tensors.find(item.key());
    if (found == tensors.end()) {
      missing.push_back(item.key());
    } else if (found->second.sizes() != item.value().sizes()) {
      std::ostringstream text;
      text << item.key() << " (checkpoint " << found->second.sizes() << ", model "
           << item.value().sizes() << ")";
      mismatched.push_back(text.str());
    }
  }
  for (const auto& [name, tensor] : tensors) {
    if (!parameters.contains(name) && !is_ignorable_extra(name, tied)) unexpected.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string message = source + ": checkpoint does not match the model config";
    auto list = [&message](const char* label, const std::vector<std::string>& names) {
      if (names.empty()) return;
      message += std::string("; ") + label + " (" + std::to_string(names.size()) + "): ";
      for (size_t i = 0; i < names.size() && i < 20; ++i) message += (i ? ", " : "") + names[i];
      if (names.size() > 20) message += ", ...";
    };
    list("missing tensors", missing);
    list("unexpected tensors", unexpected);
    list("shape mismatches", mismatched);
    core::throw_bad_input(message);
  }
  // A NaN or infinity in the weights would surface as NaN losses steps later: name the tensor.
  std::vector<std::string> nonfinite;
  for (const auto& item : parameters) {
    const torch::Tensor& tensor = tensors.at(item.key());
    if (tensor.is_floating_point() && !torch::isfinite(tensor).all().item<bool>()) {
      const int64_t bad = (~torch::isfinite(tensor)).sum().item<int64_t>();
      nonfinite.push_back(item.key() + " (" + std::to_string(bad) + " of " +
                          std::to_string(tensor.numel()) + " values)");
    }
  }
  if (!nonfinite.empty()) {
    // Name the file that holds the first damaged tensor when `source` is a model directory.
    std::string where = source;
    std::error_code error;
    if (std::filesystem::is_directory(source, error)) {
      const std::string first = nonfinite.front().substr(0, nonfinite.front().find(" ("));
      const CheckpointFiles files(source);
      if (files.contains(first)) where = files.file_path(first);
    }
    std::string message = where + ": non-finite weights (NaN or infinity) in " +
                          std::to_string(nonfinite.size()) + " tensor(s): ";
    for (size_t i = 0; i < nonfinite.size() && i < 10; ++i) message += (i ? ", " : "") + nonfinite[i];
    if (nonfinite.size() > 10) message += ", ...";
    core::throw_bad_input(message + "; the checkpoint is damaged or was saved from a diverged run");
  }
  for (auto& item : parameters) item.value().copy_(tensors.at(item.key()));
}

Transformer load_model(const std::string& directory, torch::Dtype dtype, torch::Device device) {
  const ModelConfig config = read_model_config(directory);
  Transformer model(config);
  load_weights(model, load_checkpoint_tensors(directory), directory);
  model->to(device, dtype);
  model->eval();
  return model;
}

void save_model(Transformer& model, const std::string& directory,
                const std::string& tokenizer_directory, int64_t max_shard_bytes,
                torch::ScalarType save_dtype) {
  namespace fs = std::filesystem;
  // "dir/" names the directory "dir": without this the old copy would be moved into itself.
  fs::path target = fs::path(directory).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
  if (target.empty() || target == "." || target == "..") {
    core::throw_bad_input(directory + ": expected a model directory to write, not . or ..");
  }
  std::error_code status_error;
  if (fs::exists(target, status_error) && !fs::is_directory(target, status_error)) {
    core::throw_bad_input(target.string() + ": exists and is not a directory");
  }
  const fs::path temporary = target.string() + ".tmp." + std::to_string(::getpid());
  core::remove_stale_temporary(temporary.string());
  core::create_directories_for(temporary.string(), target.string());
  try {
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    torch::Dtype dtype = torch::kFloat;
    for (const auto& item : model->named_parameters()) {
      torch::Tensor tensor = item.value().detach();
      if (save_dtype != torch::ScalarType::Undefined) tensor = tensor.to(torch::kCPU).to(save_dtype);
      tensors.emplace_back(item.key(), tensor);
      dtype = tensor.scalar_type();
    }
    ModelConfig config = model->config();
    config.torch_dtype = dtype_config_name(dtype);
    core::write_file_atomically((temporary / "config.json").string(),
                                model_config_to_json(config).dump(2) + "\n");
    core::write_file_atomically((temporary / "generation_config.json").string(),
                                generation_config_json(config).dump(2) + "\n");
    save_checkpoint_tensors(temporary.string(), tensors, max_shard_bytes);
    if (!tokenizer_directory.empty()) {
      for (const std::string& file : kTokenizerFiles) {
        const fs::path source = fs::path(tokenizer_directory) / file;
        if (fs::exists(source)) fs::copy_file(source, temporary / file);
      }
    }
    // Swap the finished directory in; an old one is moved aside first and removed after.
    const fs::path previous = target.string() + ".old." + std::to_string(::getpid());
    const bool had_previous = fs::exists(target);
    if (had_previous) fs::rename(target, previous);
    fs::rename(temporary, target);
    if (had_previous) fs::remove_all(previous);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temporary, ignored);
    throw;
  }
}

}  // namespace gopd::model
