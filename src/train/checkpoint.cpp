// Training checkpoints: see checkpoint.h.
#include "gopd/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/model/model_io.h"

namespace gopd::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.pt";
constexpr const char* kMasterDirectory = "master";  // fp32 weights when saved in another dtype
constexpr const char* kRngFile = "rng_state.pt";
constexpr const char* kPartialPrefix = ".partial-";

// The step of a `step_N` directory name, −1 for anything else.
int64_t step_of(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5) return -1;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

// Complete step_N checkpoints, oldest first.
std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const std::string& directory) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code error;
  if (!fs::is_directory(directory, error)) return found;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory)) {
    const int64_t step = step_of(entry.path().filename().string());
    if (step >= 0 && entry.is_directory() && fs::exists(entry.path() / kStateFile)) {
      found.emplace_back(step, entry.path());
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

// torch::save into `path` through a writer that never fails inside LibTorch (a failed write
// there ends in std::terminate from its stream writer's destructor): the first write error is
// kept, the rest of the archive discarded, and the error reported once LibTorch is done.
template <typename Value>
void save_torch(const Value& value, const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    core::throw_runtime_failure(path.string() + ": cannot open for writing: " + std::strerror(errno));
  }
  int error = 0;
  const std::function<size_t(const void*, size_t)> writer = [fd, &error](const void* data,
                                                                        size_t size) {
    const char* bytes = static_cast<const char*>(data);
    for (size_t left = size; error == 0 && left > 0;) {
      const ssize_t written = ::write(fd, bytes, left);
      if (written < 0) {
        if (errno != EINTR) error = errno;
        continue;
      }
      bytes += written;
      left -= size_t(written);
    }
    return size;
  };
  try {
    torch::save(value, writer);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    core::throw_runtime_failure(path.string() + ": write failed: " + std::strerror(error));
  }
}

// The newest complete checkpoint's name, or "none".
std::string previous_checkpoint(const std::string& directory) {
  const auto found = complete_checkpoints(directory);
  return found.empty() ? std::string("none") : found.back().second.filename().string();
}

// The checkpoint's files in `partial`; the state file last, as its presence marks it complete.
void write_checkpoint(const fs::path& partial, const CheckpointState& state, model::Transformer& model,
                      const torch::optim::Optimizer& optimizer, const std::string& tokenizer_directory,
                      torch::ScalarType save_dtype) {
  fs::create_directories(partial.parent_path());
  fs::remove_all(partial);
  model::save_model(model, partial.string(), tokenizer_directory, 5'000'000'000, save_dtype);
  if (save_dtype != torch::ScalarType::Undefined &&
      save_dtype != model->output_weight().scalar_type()) {
    model::save_model(model, (partial / kMasterDirectory).string());
  }
  save_torch(optimizer, partial / kOptimizerFile);
  {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    save_torch(generator.get_state(), partial / kRngFile);
  }
  const nlohmann::json json = {{"step", state.step},
                               {"epoch", state.epoch},
                               {"cursor", state.cursor},
                               {"optimizer_steps", state.optimizer_steps},
                               {"skipped_steps", state.skipped_steps},
                               {"nonfinite_in_a_row", state.nonfinite_in_a_row},
                               {"algorithm", state.algorithm}};
  // Written last: its presence marks the checkpoint complete.
  core::write_file_atomically((partial / kStateFile).string(), json.dump(2) + "\n");
}

}  // namespace

std::string save_checkpoint(const std::string& checkpoints_directory, const CheckpointState& state,
                            model::Transformer& model, const torch::optim::Optimizer& optimizer,
                            const std::string& tokenizer_directory, torch::ScalarType save_dtype) {
  const std::string name = "step_" + std::to_string(state.step);
  const fs::path target = fs::path(checkpoints_directory) / name;
  const fs::path partial = fs::path(checkpoints_directory) / (kPartialPrefix + name);
  try {
    write_checkpoint(partial, state, model, optimizer, tokenizer_directory, save_dtype);
    // Every file reaches the disk before the rename publishes the checkpoint, and the rename
    // before training goes on.
    core::sync_tree(partial.string());
    fs::remove_all(target);
    fs::rename(partial, target);
    core::sync_directory(checkpoints_directory);
  } catch (const std::exception& error) {
    std::error_code ignored;
    fs::remove_all(partial, ignored);
    core::throw_runtime_failure(
        "cannot save checkpoint " + name + " in " + checkpoints_directory + ": " + error.what() +
        ". The run stops here; the newest complete checkpoint (" +
        previous_checkpoint(checkpoints_directory) +
        ") is intact: free space (or fix the folder), then continue with --resume auto");
  }
  return target.string();
}

std::string latest_checkpoint(const std::string& checkpoints_directory) {
  const auto found = complete_checkpoints(checkpoints_directory);
  return found.empty() ? std::string() : found.back().second.string();
}

CheckpointState read_checkpoint_state(const std::string& checkpoint_directory) {
  const std::string path = (fs::path(checkpoint_directory) / kStateFile).string();
  std::ifstream in(path);
  if (!in) {
    core::throw_bad_input(checkpoint_directory + ": not a gopd training checkpoint (no " +
                          std::string(kStateFile) + ")");
  }
  CheckpointState state;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    core::throw_bad_input(path + ": malformed checkpoint state: " + error.what());
  }
  if (!json.is_object()) core::throw_bad_input(path + ": malformed checkpoint state: expected a JSON object");
  const auto integer = [&](const char* key) {
    const auto found = json.find(key);
    if (found == json.end() || !found->is_number_integer()) {
      core::throw_bad_input(path + ": \"" + key + "\": expected an integer, found " +
                            (found == json.end() ? std::string("nothing") : found->dump()));
    }
    return found->get<int64_t>();
  };
  state.step = integer("step");
  state.epoch = integer("epoch");
  state.cursor = integer("cursor");
  state.optimizer_steps = integer("optimizer_steps");
  state.skipped_steps = integer("skipped_steps");
  state.nonfinite_in_a_row = integer("nonfinite_in_a_row");
  const auto algorithm = json.find("algorithm");
  if (algorithm == json.end() || !algorithm->is_string()) {
    core::throw_bad_input(path + ": \"algorithm\": expected a string");
  }
  state.algorithm = algorithm->get<std::string>();
  if (state.step < 0 || state.cursor < 0) core::throw_bad_input(path + ": negative step or cursor");
  for (const char* file : {kOptimizerFile, kRngFile}) {
    if (!fs::exists(fs::path(checkpoint_directory) / file)) {
      core::throw_bad_input(checkpoint_directory + ": checkpoint has no " + std::string(file));
    }
  }
  return state;
}

std::string trained_weights_directory(const std::string& checkpoint_directory) {
  const fs::path master = fs::path(checkpoint_directory) / kMasterDirectory;
  return fs::is_directory(master) ? master.string() : checkpoint_directory;
}

void restore_optimizer_and_rng(const std::string& checkpoint_directory,
                               torch::optim::Optimizer& optimizer) {
  const fs::path directory(checkpoint_directory);
  // LibTorch's reader says what failed in its first sentence and then, for a damaged archive,
  // calls it "an internal miniz error"; the user needs the file and what to do.
  const auto refuse = [](const std::string& file, const c10::Error& error) {
    std::string cause = error.what_without_backtrace();
    const size_t sentence = cause.find(". ");
    if (sentence != std::string::npos) cause.erase(sentence);
    if (const size_t newline = cause.find('\n'); newline != std::string::npos) cause.erase(newline);
    core::throw_bad_input(file + ": cannot restore this checkpoint's training state (" + cause +
                          "); the file is damaged or from another model or optimizer setup: resume "
                          "from an earlier checkpoint (--resume <checkpoint directory>)");
  };
  const std::string optimizer_path = (directory / kOptimizerFile).string();
  try {
    torch::load(optimizer, optimizer_path);
  } catch (const c10::Error& error) {
    refuse(optimizer_path, error);
  }
  const std::string rng_path = (directory / kRngFile).string();
  try {
    torch::Tensor rng_state;
    torch::load(rng_state, rng_path);
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng_state);
  } catch (const c10::Error& error) {
    refuse(rng_path, error);
  }
}

void prune_checkpoints(const std::string& checkpoints_directory, int64_t keep_last) {
  std::error_code error;
  if (!fs::is_directory(checkpoints_directory, error)) return;
  for (const fs::directory_entry& entry : fs::directory_iterator(checkpoints_directory)) {
    if (entry.path().filename().string().rfind(kPartialPrefix, 0) == 0) fs::remove_all(entry.path());
  }
  if (keep_last <= 0) return;
  const auto found = complete_checkpoints(checkpoints_directory);
  for (size_t i = 0; i + size_t(keep_last) < found.size(); ++i) {
    fs::remove_all(found[i].second);
    spdlog::info("removed old checkpoint {} (train.keep_last {})", found[i].second.string(), keep_last);
  }
}

}  // namespace gopd::train
