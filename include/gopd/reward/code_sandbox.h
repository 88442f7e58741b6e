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
#include <functional>
#include <string>
#include <vector>

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

// The outcome of a program that ended on its own (not by the wall clock or the output cap),
// from its exit_code / signal / wall_seconds / stderr_text: SIGXCPU (or SIGKILL past 90% of
// the CPU limit) = timeout; another signal or a MemoryError = crashed; status 0 = passed;
// else failed. Shared by the one-case and the batched paths.
void classify_exit(SandboxResult& result, const SandboxOptions& options);

// A second output of the sandboxed program: a pipe at its fd 4, which bwrap's init does not
// keep, read line by line into on_line as lines complete; on_line returning false, or more
// than max_bytes in all, kills the sandbox (the result is then whatever the run was at).
struct ReportChannel {
  std::function<bool(const std::string& line)> on_line;
  int64_t max_bytes = 1 << 20;
};
SandboxResult run_python_sandboxed(const std::string& program, const std::string& stdin_text,
                                   const SandboxOptions& options, ReportChannel* channel);

struct SandboxCase {
  std::string program;
  std::string stdin_text;
};

// All of a response's test cases in ONE sandbox (one bubblewrap start instead of one per
// case): a trusted runner inside it (`python3 -I`) forks each case from its interpreter as its
// own process with the per-case limits of `options` (wall clock, CPU, memory, file size, output
// cap) and a fresh __main__, as `python3 -I -c` would run it, and before
// the next case kills whatever the case left running and empties what it could have written
// (code_sandbox_batch.cpp lists it), so a case sees the sandbox as a fresh one. Results are in
// case order, judged as run_python_sandboxed judges one case. on_case (if given) sees each
// result as it arrives; returning false stops the run: the cases after it are refused, "not run".
// Cases the runner could not report (a case killed it, or the whole sandbox ran out of time) are
// crashed / timeout. Without bubblewrap, or for a program the batch cannot carry (not UTF-8),
// cases run one by one on the one-case path.
std::vector<SandboxResult> run_python_cases_sandboxed(
    const std::vector<SandboxCase>& cases, const SandboxOptions& options,
    const std::function<bool(size_t index, const SandboxResult& result)>& on_case = {});

}  // namespace gopd::reward
