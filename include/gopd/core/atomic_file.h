// Writes a file so that readers see either nothing or the whole of it: the content goes to
// a temporary name in the same directory and is renamed over the target on commit(). If the
// writer is destroyed without commit() (an exception unwound past it), the temporary is
// removed, so a failed command leaves no half-written output.
#pragma once

#include <fstream>
#include <string>
#include <system_error>

namespace gopd::core {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);  // throws Error (exit 1) if it cannot create
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  std::ostream& stream() { return stream_; }
  void commit();  // flush, fsync-free close, rename onto the target

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string temp_path_;
  std::ofstream stream_;
  bool committed_ = false;
};

// Convenience: the whole content at once.
void write_file_atomically(const std::string& path, const std::string& content);

// True for the file-system errors that mean a path the user gave cannot be used as it is
// (missing, not a directory, no permission, read-only, exists): bad input (exit 2). Others
// (disk full, I/O error) are runtime failures (exit 1).
bool is_path_error(const std::error_code& error);

// create_directories(`directory`) for writing `path` (named first in the message); Error with
// exit 2 for a path error, 1 otherwise.
void create_directories_for(const std::string& directory, const std::string& path);

// Removes a temporary an earlier, killed process may have left at `path`; nothing there (or a
// parent that is not a directory, reported when the directory is created) is not an error.
void remove_stale_temporary(const std::string& path);

// The same check without creating anything, for commands that write only after long work:
// the nearest existing ancestor of `directory` must be a writable directory (exit 2 if not).
void check_directory_can_be_created(const std::string& directory, const std::string& path);

// fsync of every file and folder under `path` (and `path` itself), so that a rename that
// publishes them comes after their data is on disk. Failure: Error (exit 1) naming the file.
void sync_tree(const std::string& path);
// fsync of one folder (after a rename in it).
void sync_directory(const std::string& path);

}  // namespace gopd::core
