// Implements AtomicFileWriter: temp file beside the target, rename on commit.
#include "gopd/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "gopd/core/error.h"

namespace gopd::core {

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  const std::filesystem::path target(path_);
  if (target.has_parent_path()) create_directories_for(target.parent_path().string(), path_);
  // The pid keeps two processes writing the same target from sharing a temporary.
  temp_path_ = path_ + ".tmp." + std::to_string(::getpid());
  errno = 0;
  stream_.open(temp_path_, std::ios::binary | std::ios::trunc);
  if (!stream_) {
    const std::error_code error(errno, std::generic_category());
    const std::string message = path_ + ": cannot open " + temp_path_ + " for writing" +
                                (errno != 0 ? ": " + error.message() : std::string());
    if (is_path_error(error)) throw_bad_input(message + " (check the path and its permissions)");
    throw_runtime_failure(message);
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) {
    stream_.close();
    std::remove(temp_path_.c_str());
  }
}

void AtomicFileWriter::commit() {
  stream_.flush();
  const bool ok = static_cast<bool>(stream_);
  stream_.close();
  if (!ok || stream_.fail()) {
    std::remove(temp_path_.c_str());
    committed_ = true;
    throw_runtime_failure(path_ + ": write failed (disk full?)");
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    std::remove(temp_path_.c_str());
    committed_ = true;
    throw_runtime_failure(path_ + ": cannot rename " + temp_path_ + " onto it");
  }
  committed_ = true;
}

namespace {

void sync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_runtime_failure(path + ": cannot open to sync: " + std::strerror(errno));
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0) throw_runtime_failure(path + ": fsync failed: " + std::strerror(error));
}

}  // namespace

void sync_tree(const std::string& path) {
  std::error_code error;
  for (std::filesystem::recursive_directory_iterator it(path, error), end; !error && it != end;
       it.increment(error)) {
    if (it->is_symlink(error)) continue;
    sync_path(it->path().string(), it->is_directory(error));
  }
  if (error) throw_runtime_failure(path + ": cannot list to sync: " + error.message());
  sync_path(path, std::filesystem::is_directory(path, error));
}

void sync_directory(const std::string& path) { sync_path(path, true); }

bool is_path_error(const std::error_code& error) {
  switch (static_cast<std::errc>(error.value())) {
    case std::errc::no_such_file_or_directory:
    case std::errc::not_a_directory:
    case std::errc::is_a_directory:
    case std::errc::permission_denied:
    case std::errc::operation_not_permitted:
    case std::errc::read_only_file_system:
    case std::errc::file_exists:
    case std::errc::filename_too_long:
      return error.category() == std::generic_category() || error.category() == std::system_category();
    default:
      return false;
  }
}

void check_directory_can_be_created(const std::string& directory, const std::string& path) {
  namespace fs = std::filesystem;
  fs::path existing = fs::absolute(directory).lexically_normal();
  std::error_code error;
  while (!fs::exists(existing, error) && existing.has_parent_path() && existing != existing.parent_path()) {
    existing = existing.parent_path();
  }
  if (!fs::is_directory(existing, error)) {
    throw_bad_input(path + ": cannot create directory " + directory + ": " + existing.string() +
                    " is not a directory");
  }
  if (::access(existing.c_str(), W_OK | X_OK) != 0) {
    throw_bad_input(path + ": cannot create directory " + directory + ": " + existing.string() +
                    ": " + std::error_code(errno, std::generic_category()).message() +
                    " (check the path and its permissions)");
  }
}

void remove_stale_temporary(const std::string& path) {
  std::error_code error;
  std::filesystem::remove_all(path, error);
  if (error && error != std::errc::not_a_directory && error != std::errc::no_such_file_or_directory) {
    throw_runtime_failure(path + ": cannot remove a stale temporary: " + error.message());
  }
}

void create_directories_for(const std::string& directory, const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (!error) return;
  const std::string message = path + ": cannot create directory " + directory + ": " + error.message();
  if (is_path_error(error)) throw_bad_input(message + " (check the path and its permissions)");
  throw_runtime_failure(message);
}

void write_file_atomically(const std::string& path, const std::string& content) {
  AtomicFileWriter writer(path);
  writer.stream() << content;
  writer.commit();
}

}  // namespace gopd::core
