// An LD_PRELOAD library for the disk-full tests: write() and writev() on a file whose path
// contains $GOPD_ENOSPC_PATH fail with ENOSPC once $GOPD_ENOSPC_AFTER bytes have gone to such
// files, as a full disk would make them (no mount, no root needed). Without the variables
// every call goes straight to libc.
#include <dlfcn.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

std::atomic<long long> written{0};

bool on_full_disk(int fd, size_t size) {
  const char* pattern = std::getenv("GOPD_ENOSPC_PATH");
  if (pattern == nullptr || *pattern == '\0') return false;
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char path[4096];
  const ssize_t length = ::readlink(link, path, sizeof path - 1);
  if (length <= 0) return false;
  path[length] = '\0';
  if (std::strstr(path, pattern) == nullptr) return false;
  const char* after = std::getenv("GOPD_ENOSPC_AFTER");
  const long long budget = after != nullptr ? std::atoll(after) : 0;
  return written.fetch_add(static_cast<long long>(size)) + static_cast<long long>(size) > budget;
}

}  // namespace

extern "C" ssize_t write(int fd, const void* data, size_t size) {
  using Write = ssize_t (*)(int, const void*, size_t);
  static const Write real = reinterpret_cast<Write>(dlsym(RTLD_NEXT, "write"));
  if (on_full_disk(fd, size)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, data, size);
}

extern "C" ssize_t writev(int fd, const struct iovec* parts, int count) {
  using Writev = ssize_t (*)(int, const struct iovec*, int);
  static const Writev real = reinterpret_cast<Writev>(dlsym(RTLD_NEXT, "writev"));
  size_t size = 0;
  for (int i = 0; i < count; ++i) size += parts[i].iov_len;
  if (on_full_disk(fd, size)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, parts, count);
}
