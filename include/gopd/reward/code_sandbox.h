// The sandbox of the code verifier (DESIGN.md "Verifiable rewards"): runs one Python program
// text with a given stdin under bubblewrap and reports how it ended. Model-written code is
// hostile input, so the program sees no network, no host files other than /usr (read-only),
// a private tmpfs /tmp, a clean environment, and rlimits on CPU, memory, file size and
// processes; a wall clock kills the whole sandbox.
//
// Choices:
//  - The program travels as the argument of `python3 -c` (no host temp file to clean up);
//    texts over kMaxProgramBytes or containing NUL bytes are refused.
//  - bwrap --unshare-all --unshare-user --disable-userns --die-with-parent --new-session;
//    killing the sandbox's PID-namespace init (its host pid comes from --info-fd) makes the
//    kernel kill and reap every process inside before bwrap exits, so nothing outlives a run,
//    not even a process that started a new session.
//  - RLIMIT_NPROC counts processes per real uid and does not bind root. When gopd runs as
//    root, each run is started as a fresh unused host uid (cycling through 65536), so
//    the limit is max_processes per sandbox. Otherwise it is the uid's current process count
//    plus max_processes, which still stops a fork bomb.
//  - Without bubblewrap nothing runs (kRefused) unless allow_unsandboxed is set; then the
//    program runs with the rlimits and the process-group kill only, after a loud warning.
#pragma once

#include <cstdint>
#include <string>

namespace gopd::reward {

inline constexpr int64_t kMaxProgramBytes = 100 * 1024;  // argv strings are capped at 128 KiB

enum class SandboxOutcome {
  kPassed,   // exited with status 0 (the caller still compares the output)
  kFailed,   // non-zero exit, or output over the byte cap
  kTimeout,  // wall clock or CPU limit reached
  kCrashed,  // killed by a signal, or ran out of memory (MemoryError)
  kRefused,  // not run: no sandbox available, bad interpreter, program refused
};

const char* outcome_name(SandboxOutcome outcome);

struct SandboxOptions {
  std::string python = "python3";  // "python3" resolves to /usr/bin/python3; a path is used as is
  double wall_seconds = 5.0;
  int64_t cpu_seconds = 5;
  int64_t memory_mb = 512;  // RLIMIT_AS
  int64_t file_size_mb = 16;
  int64_t max_output_bytes = 64 * 1024;  // per stream; over it the run is killed
  int64_t max_processes = 16;
  bool allow_unsandboxed = false;
  // The sandbox's process is started with vfork (no copy of this process's page tables); true
  // = fork, the reference path (tests and `bench sandbox` compare the two).
  bool spawn_with_fork = false;
};

struct SandboxResult {
  SandboxOutcome outcome = SandboxOutcome::kRefused;
  int exit_code = -1;  // exit status of the program, -1 when killed or not run
  int signal = 0;      // terminating signal, 0 when none
  bool truncated = false;
  std::string stdout_text;
  std::string stderr_text;
  std::string message;  // why it was refused / killed, for the verdict detail
  double wall_seconds = 0.0;
};

// True when /usr/bin/bwrap (or bwrap on PATH) exists and is executable.
bool bubblewrap_available();

// The interpreter path a sandbox runs: "python3" -> /usr/bin/python3 when present (never a
// pyenv shim); another bare name is searched on PATH and resolved through symlinks; a path is
// used as given. Empty when nothing usable is found or it lies under /root or /home.
std::string resolve_python(const std::string& configured);

// Runs `program` with `stdin_text` on its stdin. Never throws for anything the program does.
SandboxResult run_python_sandboxed(const std::string& program, const std::string& stdin_text,
                                   const SandboxOptions& options);

}  // namespace gopd::reward
