// Implements the bubblewrap sandbox of code_sandbox.h: vfork, rlimits and uid drop in the child,
// exec bwrap (or the interpreter itself when unsandboxed runs are allowed), then a poll loop
// that feeds stdin, reads stdout/stderr up to the cap and enforces the wall clock.
#include "gopd/reward/code_sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

namespace gopd::reward {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kSlots = 256;                       // concurrent sandboxes per gopd process
constexpr uid_t kSandboxUidBase = 1'500'000'000;  // unused host uids, a fresh one per run when root
constexpr int kBwrapProcesses = 2;                // bwrap's monitor and PID-namespace init

// Slot pool: caps the number of sandboxes running at once in this process.
class SlotPool {
 public:
  int acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return std::find(used_.begin(), used_.end(), false) != used_.end(); });
    const auto free_slot = std::find(used_.begin(), used_.end(), false);
    *free_slot = true;
    return static_cast<int>(free_slot - used_.begin());
  }
  void release(int slot) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      used_[static_cast<size_t>(slot)] = false;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<bool> used_ = std::vector<bool>(kSlots, false);
};

SlotPool& slot_pool() {
  static SlotPool pool;
  return pool;
}

struct SlotGuard {
  int slot;
  SlotGuard() : slot(slot_pool().acquire()) {}
  ~SlotGuard() { slot_pool().release(slot); }
  SlotGuard(const SlotGuard&) = delete;
  SlotGuard& operator=(const SlotGuard&) = delete;
};

bool is_executable(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  std::string entries = path;
  size_t start = 0;
  while (start <= entries.size()) {
    const size_t end = std::min(entries.find(':', start), entries.size());
    const std::string dir = entries.substr(start, end - start);
    start = end + 1;
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    if (!is_executable(candidate)) continue;
    std::error_code error;
    const std::string real = fs::canonical(candidate, error).string();
    // A shim (pyenv, asdf) under a home directory would not exist inside the sandbox.
    if (error || real.rfind("/root/", 0) == 0 || real.rfind("/home/", 0) == 0) continue;
    return real;
  }
  return "";
}

std::string bubblewrap_path() {
  if (is_executable("/usr/bin/bwrap")) return "/usr/bin/bwrap";
  return find_on_path("bwrap");
}

bool under(const std::string& path, const char* prefix) {
  return path == prefix || path.rfind(std::string(prefix) + "/", 0) == 0;
}

// Number of processes owned by `uid` now (the owner of /proc/<pid> is the process's euid).
int64_t count_processes(uid_t uid) {
  int64_t count = 0;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat info {};
    if (::stat(entry.path().c_str(), &info) == 0 && info.st_uid == uid) ++count;
  }
  return count;
}

void set_limit(int resource, rlim_t soft, rlim_t hard) {
  const struct rlimit limit = {soft, hard};
  ::setrlimit(resource, &limit);
}

// Moves `from` onto `to` with close-on-exec cleared (dup2 onto itself would keep the flag).
void move_fd(int from, int to) {
  if (from == to) {
    ::fcntl(to, F_SETFD, 0);
  } else {
    ::dup2(from, to);
  }
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Kills the sandbox: first its PID-namespace init (the kernel then kills and reaps everything
// inside, and bwrap's monitor exits), then the process group as a fallback; always reaps.
int kill_and_reap(pid_t child, pid_t namespace_init) {
  int status = 0;
  if (namespace_init > 0) {
    ::kill(namespace_init, SIGKILL);
    const auto grace = Clock::now() + std::chrono::seconds(1);
    while (Clock::now() < grace) {
      if (::waitpid(child, &status, WNOHANG) == child) return status;
      ::poll(nullptr, 0, 2);
    }
  }
  ::kill(-child, SIGKILL);
  ::kill(child, SIGKILL);
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

pid_t parse_child_pid(const std::string& info) {
  const size_t key = info.find("\"child-pid\"");
  if (key == std::string::npos) return -1;
  const size_t digits = info.find_first_of("0123456789", key);
  if (digits == std::string::npos) return -1;
  const size_t end = info.find_first_not_of("0123456789", digits);
  if (end == std::string::npos) return -1;  // still being written
  return static_cast<pid_t>(std::stol(info.substr(digits, end - digits)));
}

std::vector<std::string> bwrap_arguments(const std::string& bwrap, const std::string& python,
                                         const std::string& program) {
  std::vector<std::string> args = {bwrap,
                                   "--unshare-all",
                                   "--unshare-user",
                                   "--disable-userns",
                                   "--die-with-parent",
                                   "--new-session",
                                   "--ro-bind",
                                   "/usr",
                                   "/usr"};
  // /bin, /lib... are symlinks into /usr on merged-/usr systems; mirror what the host has.
  for (const char* top : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat info {};
    if (::lstat(top, &info) != 0) continue;
    if (S_ISLNK(info.st_mode)) {
      std::error_code error;
      const fs::path target = fs::read_symlink(top, error);
      if (!error) args.insert(args.end(), {"--symlink", target.string(), top});
    } else if (S_ISDIR(info.st_mode)) {
      args.insert(args.end(), {"--ro-bind", top, top});
    }
  }
  // An interpreter installed outside /usr (e.g. /opt/python3.11/bin/python3) needs its prefix.
  if (!under(python, "/usr")) {
    const std::string prefix = fs::path(python).parent_path().parent_path().string();
    args.insert(args.end(), {"--ro-bind", prefix, prefix});
  }
  // the root and /dev are read-only (not recursively: /tmp, /dev/shm and /proc stay writable), and
  // POSIX message queues are listed at /dev/mqueue, so the batch runner can remove them
  args.insert(args.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--tmpfs",
                           "/tmp", "--mqueue", "/dev/mqueue", "--remount-ro", "/", "--remount-ro",
                           "/dev"});
  args.insert(args.end(), {"--chdir",  "/tmp",
                           "--clearenv", "--setenv",  "PATH",     "/usr/bin:/bin",
                           "--setenv",   "HOME",      "/tmp",     "--setenv",
                           "LANG",       "C.UTF-8",   "--setenv", "PYTHONDONTWRITEBYTECODE",
                           "1",          "--info-fd", "3",        "--",
                           python,       "-I",        "-c",       program});
  return args;
}

// What the sandbox's child process does between (v)fork and execve, all in raw system calls:
// the vfork child shares the parent's memory and thread state, so nothing here may allocate,
// take a lock or go through glibc's set*id (which signals every thread of the process).
struct ChildSetup {
  int stdin_fd, stdout_fd, stderr_fd, info_fd;
  int report_fd;  // becomes fd 4 when >= 0 (ReportChannel)
  rlim_t cpu, memory, file_size, processes;
  bool drop_uid;
  uid_t uid;
  bool sandboxed;
  char* const* argv;
  char* const* envp;
  const sigset_t* signal_mask;  // restored before execve
};

[[noreturn]] void exec_child(const ChildSetup& setup) {
  // handlers installed in this process would run in the child with the parent's memory
  for (int signal = 1; signal < NSIG; ++signal) {
    if (signal == SIGKILL || signal == SIGSTOP) continue;
    struct sigaction current {};
    if (::sigaction(signal, nullptr, &current) == 0 && current.sa_handler != SIG_DFL &&
        current.sa_handler != SIG_IGN) {
      struct sigaction reset {};
      reset.sa_handler = SIG_DFL;
      ::sigaction(signal, &reset, nullptr);
    }
  }
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, setup.signal_mask, nullptr, _NSIG / 8);
  ::setsid();  // own process group, so the wall clock can kill the whole group
  move_fd(setup.stdin_fd, 0);
  move_fd(setup.stdout_fd, 1);
  move_fd(setup.stderr_fd, 2);
  move_fd(setup.info_fd, 3);
  if (setup.report_fd >= 0) move_fd(setup.report_fd, 4);
  ::syscall(SYS_close_range, setup.report_fd >= 0 ? 5U : 4U, ~0U, 0U);
  set_limit(RLIMIT_CPU, setup.cpu, setup.cpu + 1);  // SIGXCPU at the soft limit, SIGKILL 1 s later
  set_limit(RLIMIT_AS, setup.memory, setup.memory);
  set_limit(RLIMIT_FSIZE, setup.file_size, setup.file_size);
  set_limit(RLIMIT_NPROC, setup.processes, setup.processes);
  set_limit(RLIMIT_CORE, 0, 0);
  if (setup.drop_uid) {
    if (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setgid, setup.uid) != 0 ||
        ::syscall(SYS_setuid, setup.uid) != 0) {
      ::_exit(126);
    }
  }
  if (!setup.sandboxed && ::chdir("/tmp") != 0) ::_exit(126);
  ::execve(setup.argv[0], setup.argv, setup.envp);
  ::_exit(127);
}

SandboxResult refused(const std::string& message) {
  SandboxResult result;
  result.outcome = SandboxOutcome::kRefused;
  result.message = message;
  return result;
}

}  // namespace

const char* outcome_name(SandboxOutcome outcome) {
  switch (outcome) {
    case SandboxOutcome::kPassed:
      return "passed";
    case SandboxOutcome::kFailed:
      return "failed";
    case SandboxOutcome::kTimeout:
      return "timeout";
    case SandboxOutcome::kCrashed:
      return "crashed";
    case SandboxOutcome::kRefused:
      return "refused";
  }
  return "unknown";
}

bool bubblewrap_available() { return !bubblewrap_path().empty(); }

std::string resolve_python(const std::string& configured) {
  std::string path;
  if (configured.find('/') != std::string::npos) {
    path = configured;
    if (!is_executable(path)) return "";
  } else if (configured == "python3" && is_executable("/usr/bin/python3")) {
    path = "/usr/bin/python3";
  } else {
    path = find_on_path(configured);
  }
  if (path.empty() || under(path, "/root") || under(path, "/home")) return "";
  return path;
}

SandboxResult run_python_sandboxed(const std::string& program, const std::string& stdin_text,
                                   const SandboxOptions& options) {
  return run_python_sandboxed(program, stdin_text, options, nullptr);
}

SandboxResult run_python_sandboxed(const std::string& program, const std::string& stdin_text,
                                   const SandboxOptions& options, ReportChannel* channel) {
  if (program.size() > static_cast<size_t>(kMaxProgramBytes)) {
    return refused("program over " + std::to_string(kMaxProgramBytes / 1024) + " KiB");
  }
  if (program.find('\0') != std::string::npos) return refused("program contains a NUL byte");
  const std::string python = resolve_python(options.python);
  if (python.empty()) return refused("no usable Python interpreter for \"" + options.python + "\"");
  const std::string bwrap = bubblewrap_path();
  const bool sandboxed = !bwrap.empty();
  if (!sandboxed) {
    if (!options.allow_unsandboxed) {
      return refused(
          "bubblewrap (bwrap) not found; install it or set reward.code.allow_unsandboxed");
    }
    static std::once_flag warned;
    std::call_once(warned, [] {
      spdlog::warn(
          "!!! bubblewrap not found: running model-written code WITHOUT a sandbox "
          "(reward.code.allow_unsandboxed = true); only rlimits protect this machine !!!");
    });
  }

  SlotGuard slot;
  const bool drop_uid = ::geteuid() == 0;
  // A fresh uid per run (cycling through 65536 per gopd process): the processes of a run
  // that just ended may not be released yet, and must not count against the next one.
  static std::atomic<uint32_t> run_counter{0};
  const uid_t sandbox_uid = kSandboxUidBase + static_cast<uid_t>(::getpid() % 4096) * 65536 +
                            static_cast<uid_t>(run_counter++ % 65536);
  const int64_t base_processes = drop_uid ? 0 : count_processes(::getuid());
  const auto process_limit =
      static_cast<rlim_t>(base_processes + options.max_processes + kBwrapProcesses);

  // Everything the child touches is prepared before fork: after fork in a threaded process
  // only async-signal-safe calls are allowed.
  const std::vector<std::string> args = sandboxed
                                            ? bwrap_arguments(bwrap, python, program)
                                            : std::vector<std::string>{python, "-I", "-c", program};
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const std::vector<std::string> environment = {"PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8",
                                                "PYTHONDONTWRITEBYTECODE=1"};
  std::vector<char*> envp;
  for (const std::string& entry : environment) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  // stdin is a socket so that writing to a program that exited cannot raise SIGPIPE here.
  int stdin_pair[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1},
      info_pipe[2] = {-1, -1}, report_pipe[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stdin_pair) != 0 ||
      ::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(info_pipe, O_CLOEXEC) != 0 ||
      (channel != nullptr && ::pipe2(report_pipe, O_CLOEXEC) != 0)) {
    for (int* fds : {stdin_pair, out_pipe, err_pipe, info_pipe, report_pipe}) {
      close_fd(fds[0]);
      close_fd(fds[1]);
    }
    return refused(std::string("pipe: ") + std::strerror(errno));
  }
  const rlim_t cpu = static_cast<rlim_t>(options.cpu_seconds);
  const rlim_t memory = static_cast<rlim_t>(options.memory_mb) << 20;
  const rlim_t file_size = static_cast<rlim_t>(options.file_size_mb) << 20;

  const auto start = Clock::now();
  // vfork, not fork: fork copies the page tables of this process (multi-GB during training)
  // for every sandbox, ~60 ms at 2 GB, which was most of a GRPO step on code. The vfork child
  // borrows this memory until execve, so it makes only raw system calls (exec_child), with
  // every signal blocked here across the call. fork stays as the reference path.
  const ChildSetup setup{stdin_pair[1], out_pipe[1], err_pipe[1], info_pipe[1], report_pipe[1], cpu, memory,
                         file_size, process_limit, drop_uid, sandbox_uid, sandboxed,
                         argv.data(), envp.data(), nullptr};
  sigset_t all_signals, saved_mask;
  ::sigfillset(&all_signals);
  ::pthread_sigmask(SIG_SETMASK, &all_signals, &saved_mask);
  ChildSetup child_setup = setup;
  child_setup.signal_mask = &saved_mask;
  const pid_t child = options.spawn_with_fork ? ::fork() : ::vfork();
  if (child == 0) exec_child(child_setup);
  ::pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr);
  if (child < 0) {
    for (int* fds : {stdin_pair, out_pipe, err_pipe, info_pipe, report_pipe}) {
      close_fd(fds[0]);
      close_fd(fds[1]);
    }
    return refused(std::string(options.spawn_with_fork ? "fork: " : "vfork: ") + std::strerror(errno));
  }
  close_fd(stdin_pair[1]);
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  close_fd(info_pipe[1]);
  close_fd(report_pipe[1]);
  int stdin_fd = stdin_pair[0], stdout_fd = out_pipe[0], stderr_fd = err_pipe[0],
      info_fd = info_pipe[0], report_fd = report_pipe[0];
  std::string report_text;
  int64_t report_bytes = 0;
  bool stopped = false;  // the report channel asked to stop
  if (!sandboxed) close_fd(info_fd);
  ::fcntl(stdin_fd, F_SETFL, O_NONBLOCK);
  if (stdin_text.empty()) close_fd(stdin_fd);

  SandboxResult result;
  std::string info;
  pid_t namespace_init = -1;
  size_t stdin_written = 0;
  bool killed = false, timed_out = false;
  int status = 0;
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(options.wall_seconds));
  const size_t cap = static_cast<size_t>(options.max_output_bytes);
  char buffer[65536];

  while (stdout_fd >= 0 || stderr_fd >= 0 || info_fd >= 0 || report_fd >= 0) {
    const auto now = Clock::now();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    const int wait_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1);
    pollfd fds[5];
    int count = 0;
    auto add = [&](int fd, short events) {
      if (fd >= 0) fds[count++] = {fd, events, 0};
    };
    add(stdout_fd, POLLIN);
    add(stderr_fd, POLLIN);
    add(info_fd, POLLIN);
    add(report_fd, POLLIN);
    add(stdin_fd, POLLOUT);
    if (::poll(fds, static_cast<nfds_t>(count), wait_ms) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      if (fd == stdin_fd) {
        const ssize_t sent = ::send(fd, stdin_text.data() + stdin_written,
                                    stdin_text.size() - stdin_written, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent > 0) stdin_written += static_cast<size_t>(sent);
        if ((sent < 0 && errno != EAGAIN && errno != EINTR) || stdin_written == stdin_text.size()) {
          close_fd(stdin_fd);
        }
        continue;
      }
      const ssize_t got = ::read(fd, buffer, sizeof(buffer));
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        if (fd == stdout_fd) close_fd(stdout_fd);
        if (fd == stderr_fd) close_fd(stderr_fd);
        if (fd == info_fd) close_fd(info_fd);
        if (fd == report_fd) close_fd(report_fd);
        continue;
      }
      if (fd == report_fd) {
        report_bytes += got;
        report_text.append(buffer, static_cast<size_t>(got));
        for (size_t end; !stopped && (end = report_text.find('\n')) != std::string::npos;) {
          const std::string line = report_text.substr(0, end);
          report_text.erase(0, end + 1);
          try {
            if (!channel->on_line(line)) stopped = true;
          } catch (...) {  // the sandbox must still be killed and reaped below
            stopped = true;
          }
        }
        if (report_bytes > channel->max_bytes) stopped = true;
        continue;
      }
      if (fd == info_fd) {
        info.append(buffer, static_cast<size_t>(got));
        if (namespace_init < 0) namespace_init = parse_child_pid(info);
        continue;
      }
      std::string& text = fd == stdout_fd ? result.stdout_text : result.stderr_text;
      text.append(buffer, static_cast<size_t>(got));
      if (text.size() > cap) {
        text.resize(cap);
        result.truncated = true;
      }
    }
    if (result.truncated || stopped) break;
  }
  // Output is done (or the run is over): wait for the exit within what is left of the clock.
  if (!timed_out && !result.truncated && !stopped) {
    bool reaped = false;
    while (!reaped) {
      const pid_t waited = ::waitpid(child, &status, WNOHANG);
      if (waited == child) {
        reaped = true;
        break;
      }
      if (Clock::now() >= deadline) {
        timed_out = true;
        break;
      }
      ::poll(nullptr, 0, 2);
    }
    killed = !reaped;
  } else {
    killed = true;
  }
  if (killed) status = kill_and_reap(child, namespace_init);
  for (int* fd : {&stdin_fd, &stdout_fd, &stderr_fd, &info_fd, &report_fd}) close_fd(*fd);
  result.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  if (timed_out) {
    result.outcome = SandboxOutcome::kTimeout;
    result.message = "wall clock " + std::to_string(options.wall_seconds).substr(0, 4) + " s";
    return result;
  }
  if (result.truncated) {
    result.outcome = SandboxOutcome::kFailed;
    result.message = "output over " + std::to_string(cap) + " bytes";
    return result;
  }
  if (sandboxed && namespace_init < 0) {
    // bwrap never started the program: the sandbox itself failed.
    result.outcome = SandboxOutcome::kRefused;
    result.message = "bubblewrap failed: " + result.stderr_text.substr(0, 200);
    return result;
  }
  if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    // bwrap reports a program killed by signal n as exit status 128 + n.
    if (sandboxed && code > 128 && code < 128 + 65) {
      result.signal = code - 128;
    } else {
      result.exit_code = code;
    }
  }
  classify_exit(result, options);
  return result;
}

void classify_exit(SandboxResult& result, const SandboxOptions& options) {
  if (result.signal == SIGXCPU ||
      (result.signal == SIGKILL &&
       result.wall_seconds >= 0.9 * static_cast<double>(options.cpu_seconds))) {
    result.outcome = SandboxOutcome::kTimeout;
    result.message = "CPU limit " + std::to_string(options.cpu_seconds) + " s";
  } else if (result.signal != 0) {
    result.outcome = SandboxOutcome::kCrashed;
    result.message = std::string("killed by signal ") + ::strsignal(result.signal);
  } else if (result.exit_code == 0) {
    result.outcome = SandboxOutcome::kPassed;
  } else if (result.stderr_text.find("MemoryError") != std::string::npos) {
    result.outcome = SandboxOutcome::kCrashed;
    result.message = "out of memory";
  } else {
    result.outcome = SandboxOutcome::kFailed;
    result.message = "exit status " + std::to_string(result.exit_code);
  }
}

}  // namespace gopd::reward
