// Loads the sentencepiece module once (dlopen, local and deep-bound; see spm_shim.cpp for
// why) and forwards SpmProcessor calls to it.
#include "gopd/tokenizer/sentencepiece_library.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <mutex>

#include "gopd/core/error.h"

namespace gopd::tokenizer {
namespace {

struct Module {
  void* (*load)(const std::string*, bool, std::string*) = nullptr;
  void (*free)(void*) = nullptr;
  void (*facts)(const void*, int*) = nullptr;
  int (*piece_kind)(const void*, int) = nullptr;
  void (*id_to_piece)(const void*, int, std::string*) = nullptr;
  int (*piece_to_id)(const void*, const std::string*) = nullptr;
  bool (*encode)(const void*, const std::string*, std::vector<int>*, std::string*) = nullptr;
  bool (*decode)(const void*, const std::vector<int>*, std::string*, std::string*) = nullptr;
  bool (*train)(const std::unordered_map<std::string, std::string>*,
                const std::vector<std::string>*, unsigned int, std::string*,
                std::string*) = nullptr;
};

// Where the module may be: $GOPD_SPM_MODULE, beside the running executable, then the path
// the build wrote it to.
std::vector<std::string> candidate_paths() {
  std::vector<std::string> paths;
  if (const char* override_path = std::getenv("GOPD_SPM_MODULE")) paths.push_back(override_path);
  char self[PATH_MAX];
  const ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (length > 0) {
    const std::filesystem::path directory =
        std::filesystem::path(std::string(self, length)).parent_path();
    paths.push_back((directory / "libgopd_spm.so").string());
    paths.push_back((directory / "bin" / "libgopd_spm.so").string());
  }
#ifdef GOPD_SPM_MODULE_PATH
  paths.push_back(GOPD_SPM_MODULE_PATH);
#endif
  return paths;
}

template <class Function>
void bind(void* library, const char* name, Function& function) {
  function = reinterpret_cast<Function>(::dlsym(library, name));
  if (function == nullptr) {
    core::throw_runtime_failure(std::string("sentencepiece module lacks ") + name);
  }
}

const Module& module() {
  static Module loaded;
  static std::once_flag once;
  std::call_once(once, [] {
    void* library = nullptr;
    std::string tried;
    for (const std::string& path : candidate_paths()) {
      if (!std::filesystem::exists(path)) continue;
      library = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (library != nullptr) break;
      tried += " " + path + " (" + ::dlerror() + ")";
    }
    if (library == nullptr) {
      core::throw_runtime_failure(
          "cannot load gopd's sentencepiece module libgopd_spm.so (build it with the gopd "
          "target, or set GOPD_SPM_MODULE);" +
          (tried.empty() ? std::string(" not found") : tried));
    }
    bind(library, "gopd_spm_load", loaded.load);
    bind(library, "gopd_spm_free", loaded.free);
    bind(library, "gopd_spm_facts", loaded.facts);
    bind(library, "gopd_spm_piece_kind", loaded.piece_kind);
    bind(library, "gopd_spm_id_to_piece", loaded.id_to_piece);
    bind(library, "gopd_spm_piece_to_id", loaded.piece_to_id);
    bind(library, "gopd_spm_encode", loaded.encode);
    bind(library, "gopd_spm_decode", loaded.decode);
    bind(library, "gopd_spm_train", loaded.train);
  });
  return loaded;
}

}  // namespace

SpmProcessor::SpmProcessor(void* handle) : handle_(handle) { module().facts(handle_, facts_); }

SpmProcessor SpmProcessor::from_file(const std::string& path) {
  std::string error;
  void* handle = module().load(&path, false, &error);
  if (handle == nullptr) {
    core::throw_bad_input(path + ": not a readable sentencepiece model (" + error + ")");
  }
  return SpmProcessor(handle);
}

SpmProcessor SpmProcessor::from_serialized(const std::string& bytes) {
  std::string error;
  void* handle = module().load(&bytes, true, &error);
  if (handle == nullptr) core::throw_runtime_failure("unreadable sentencepiece model: " + error);
  return SpmProcessor(handle);
}

SpmProcessor::SpmProcessor(SpmProcessor&& other) noexcept : handle_(other.handle_) {
  std::copy(std::begin(other.facts_), std::end(other.facts_), facts_);
  other.handle_ = nullptr;
}

SpmProcessor& SpmProcessor::operator=(SpmProcessor&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) module().free(handle_);
    handle_ = other.handle_;
    std::copy(std::begin(other.facts_), std::end(other.facts_), facts_);
    other.handle_ = nullptr;
  }
  return *this;
}

SpmProcessor::~SpmProcessor() {
  if (handle_ != nullptr) module().free(handle_);
}

bool SpmProcessor::is_control(int id) const { return module().piece_kind(handle_, id) == 1; }
bool SpmProcessor::is_unknown(int id) const { return module().piece_kind(handle_, id) == 2; }

std::string SpmProcessor::id_to_piece(int id) const {
  std::string piece;
  module().id_to_piece(handle_, id, &piece);
  return piece;
}

int SpmProcessor::piece_to_id(const std::string& piece) const {
  return module().piece_to_id(handle_, &piece);
}

std::vector<int> SpmProcessor::encode(const std::string& text) const {
  std::vector<int> ids;
  std::string error;
  if (!module().encode(handle_, &text, &ids, &error)) {
    core::throw_runtime_failure("sentencepiece encode: " + error);
  }
  return ids;
}

std::string SpmProcessor::decode(const std::vector<int>& ids) const {
  std::string text;
  std::string error;
  if (!module().decode(handle_, &ids, &text, &error)) {
    core::throw_runtime_failure("sentencepiece decode: " + error);
  }
  return text;
}

std::string spm_train(const std::unordered_map<std::string, std::string>& arguments,
                      const std::vector<std::string>& sentences, unsigned int seed) {
  std::string model;
  std::string error;
  if (!module().train(&arguments, &sentences, seed, &model, &error)) core::throw_bad_input(error);
  return model;
}

}  // namespace gopd::tokenizer
