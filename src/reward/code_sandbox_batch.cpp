// The batched form of the sandbox (code_sandbox.h, run_python_cases_sandboxed): one bubblewrap
// start for all of a response's test cases. A trusted runner (`python3 -I`) inside the sandbox
// forks each case from its own already started interpreter (~2 ms instead of ~10 ms for a fresh
// interpreter), gives it its own session, stdio, limits and a fresh __main__, and does what the
// interpreter does on exit (tests/unit/code_sandbox_batch_test.cpp compares the two). Between
// cases it puts the sandbox back the way the next case would find a fresh one:
//  - every process but the runner and the namespace's init is killed (kill(-1), then checked:
//    if anything is left the runner exits and the remaining cases count as crashed);
//  - /tmp and /dev/shm are emptied (permissions a case changed are undone first), POSIX
//    message queues unlinked, SysV shared memory, queues and semaphores removed, the user
//    keyrings cleared; the root is read-only in both paths (bwrap --remount-ro /);
//  - reports travel on a pipe at the runner's fd 4, which no case holds (close_fds) and which
//    /proc cannot reach: bwrap's init closed it and the runner makes itself non-dumpable (or
//    refuses to run);
//  - a case ends when its process exits, whatever descendants still hold its pipes (those are
//    killed), as in the one-case path where the sandbox dies with the program;
//  - the runner reports each case as soon as it is clean; gopd judges the report and may stop
//    the sandbox there (all_or_nothing stops at the first failed case, as one by one does).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gopd/reward/code_sandbox.h"

namespace gopd::reward {
namespace {

using nlohmann::json;

// Runs inside the sandbox as `python3 -I -c` (the interpreter the cases would run in). Reads
// one JSON job on stdin:
//   {"python": path (unused by the forked cases), "wall": s, "cpu": s, "memory": bytes, "file_size": bytes, "cap": bytes,
//    "cases": [{"program": str, "stdin": str}, ...]}
// and writes one line per case to fd 4: {"case", "exit_code", "signal", "timed_out",
// "truncated", "wall", "stdout", "stderr", "error"} (stdout/stderr base64). Exit status 70:
// could not make itself non-dumpable; 71: could not clean up after a case.
constexpr const char* kCaseRunner = R"PY(
import base64, builtins, ctypes, io, json, os, resource, select, signal, stat, sys, time, traceback, types
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(4, 0, 0, 0, 0) != 0 or libc.prctl(3, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE 0, read back
    sys.exit(70)
reports = os.fdopen(4, "wb", buffering=0)
job = json.loads(sys.stdin.buffer.read())
os.close(0)
cap = job["cap"]
me = os.getpid()
keyctl = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)
# What a fresh sandbox looks like, restored or checked after every case: the writable
# directories' mode and times, and this process's own settings, which any process of the same
# uid could change from outside (prlimit, affinity, nice, scheduler) and later forks would inherit.
def directory_state(path):  # mode and modification time (reading a directory moves its atime)
    info = os.stat(path)
    return stat.S_IMODE(info.st_mode), info.st_mtime_ns
writable = {path: directory_state(path) for path in ("/tmp", "/dev/shm") if os.path.isdir(path)}
limit_names = [name for name in dir(resource) if name.startswith("RLIMIT_")]
def own_settings():
    return ({name: resource.getrlimit(getattr(resource, name)) for name in limit_names},
            os.sched_getaffinity(0), os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0))
settings = own_settings()

def limits():
    for name, value in settings[0].items():
        resource.setrlimit(getattr(resource, name), value)
    os.sched_setaffinity(0, settings[1])
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu"], job["cpu"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (job["memory"], job["memory"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (job["file_size"], job["file_size"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

def others():
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]

def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass

def empty(top):
    mode, mtime = writable[top]
    os.chmod(top, 0o700)
    for root, dirs, files in os.walk(top, topdown=True, onerror=None):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
    for root, dirs, files in os.walk(top, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            path = os.path.join(root, name)
            if os.path.islink(path):
                os.unlink(path)
            else:
                os.rmdir(path)
    for name in os.listxattr(top):
        os.removexattr(top, name)
    os.chmod(top, mode)
    os.utime(top, ns=(mtime, mtime))
    if os.listdir(top) or os.listxattr(top) or directory_state(top) != writable[top]:
        raise OSError("%s is not as it was" % top)

def clean():
    for _ in range(500):
        try:
            os.kill(-1, signal.SIGKILL)  # every process of ours but this one and pid 1
        except ProcessLookupError:
            pass
        reap()
        if not others():
            break
        time.sleep(0.002)
    else:
        sys.exit(71)
    for path in writable:
        empty(path)
    if os.path.isdir("/dev/mqueue"):
        for name in os.listdir("/dev/mqueue"):
            os.unlink(os.path.join("/dev/mqueue", name))
    for kind, remove in (("shm", lambda i: libc.shmctl(i, 0, None)),
                         ("msg", lambda i: libc.msgctl(i, 0, None)),
                         ("sem", lambda i: libc.semctl(i, 0, 0))):
        with open("/proc/sysvipc/" + kind) as table:
            ids = [int(line.split()[1]) for line in table.readlines()[1:] if line.strip()]
        for i in ids:
            if remove(i) != 0:
                sys.exit(71)
    if keyctl is not None:
        # the session, user and user-session keyrings (KEYCTL_CLEAR = 7), and the persistent
        # one where the kernel has it (KEYCTL_GET_PERSISTENT = 22, linked into the process keyring)
        rings = [-3, -4, -5]
        persistent = libc.syscall(keyctl, 22, -1, -2)
        if persistent > 0:
            rings.append(persistent)
        for keyring in rings:
            if libc.syscall(keyctl, 7, keyring) != 0 and ctypes.get_errno() not in (2, 126):
                sys.exit(71)  # ENOENT / ENOKEY: a ring that does not exist; anything else is not fine
    if own_settings() != settings:
        sys.exit(71)

def drain(fd, buffer):
    os.set_blocking(fd, False)
    while len(buffer) <= cap:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return
        if not chunk:
            return
        buffer += chunk

def exit_status(exit):
    # what the interpreter does with SystemExit's argument
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):  # a C long, 255 past its range, as CPython does
        return exit.code & 0xFF if -(1 << 63) <= exit.code < (1 << 63) else 255
    try:
        print(exit.code, file=sys.stderr)
    except Exception:
        pass
    return 1

def child(program, stdin_fd, stdout_fd, stderr_fd):
    # The case, in a fork of this interpreter (already started, so no interpreter start-up per
    # case): its own session, stdio, limits and a fresh __main__; then what the interpreter does
    # on the way out (wait for threads, atexit, flush). fd 4 is closed; the job is dropped, but
    # other cases' inputs may stay readable in this copy of the runner's memory (inputs only:
    # the expected outputs never enter the sandbox).
    code = 1
    try:
        os.setsid()
        os.dup2(stdin_fd, 0)
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        os.closerange(3, 1 << 16)
        limits()
        job.clear()
        os.chdir("/tmp")
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                     encoding="utf-8", newline="\n")
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                      encoding="utf-8", newline="\n")
        sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                      encoding="utf-8", errors="backslashreplace", newline="\n",
                                      line_buffering=True)
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        code = 0
        try:
            exec(compile(program, "<string>", "exec"), main.__dict__)
        except SystemExit as exit:
            code = exit_status(exit)
        except BaseException as error:
            traceback.print_exception(type(error), error, error.__traceback__.tb_next)
            code = 1
        try:
            if "threading" in sys.modules:
                sys.modules["threading"]._shutdown()
            import atexit
            atexit._run_exitfuncs()
        except BaseException:
            traceback.print_exc()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                code = code or 120
    finally:
        os._exit(code)

class Case:
    # the part of subprocess.Popen the loop below uses, for a forked child
    def __init__(self, program):
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            child(program, stdin_r, stdout_w, stderr_w)
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)
        self.stdin = os.fdopen(stdin_w, "wb", buffering=0)
        self.stdout = os.fdopen(stdout_r, "rb", buffering=0)
        self.stderr = os.fdopen(stderr_r, "rb", buffering=0)
        self.returncode = None
    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode
    def wait(self):
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

def run(case):
    data = case["stdin"].encode()
    start = time.monotonic()
    deadline = start + job["wall"]
    proc = Case(case["program"])
    stdout_fd, stderr_fd = proc.stdout.fileno(), proc.stderr.fileno()
    outputs = {stdout_fd: bytearray(), stderr_fd: bytearray()}
    reading = set(outputs)
    stdin_fd = proc.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    written = 0
    if not data:
        proc.stdin.close()
        stdin_fd = None
    timed_out = truncated = False
    try:  # readable when the process exits: no polling interval between cases
        exited_fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        exited_fd = None
    while True:
        if proc.poll() is not None:  # the case is over when its process is
            for fd in reading:
                drain(fd, outputs[fd])
            break
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        writers = [stdin_fd] if stdin_fd is not None else []
        waiting = list(reading) + ([exited_fd] if exited_fd is not None else [])
        readable, writable, _ = select.select(waiting, writers, [],
                                              left if exited_fd is not None else min(left, 0.01))
        if writable:
            try:
                written += os.write(stdin_fd, data[written:written + 65536])
                done = written >= len(data)
            except BlockingIOError:
                done = False
            except OSError:
                done = True
            if done:
                proc.stdin.close()
                stdin_fd = None
        for fd in readable:
            if fd == exited_fd:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                reading.discard(fd)
            else:
                outputs[fd] += chunk
        if any(len(buffer) > cap for buffer in outputs.values()):
            break
    for buffer in outputs.values():
        if len(buffer) > cap:
            del buffer[cap:]
            truncated = True
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    code = proc.wait()
    wall = time.monotonic() - start
    timed_out = timed_out or wall > job["wall"]  # e.g. the runner was stopped meanwhile
    if exited_fd is not None:
        os.close(exited_fd)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            stream.close()
        except Exception:
            pass
    # exit status 129..192 reads as death by signal 1..64, as bwrap reports it on the one-case path
    exit_code, signal_number = None, 0
    if code < 0:
        signal_number = -code
    elif 128 < code < 193:
        signal_number = code - 128
    else:
        exit_code = code
    return {"exit_code": exit_code, "signal": signal_number, "timed_out": timed_out,
            "truncated": truncated, "wall": wall, "error": "",
            "stdout": base64.b64encode(bytes(outputs[stdout_fd])).decode(),
            "stderr": base64.b64encode(bytes(outputs[stderr_fd])).decode()}

for index, case in enumerate(job["cases"]):
    try:
        result = run(case)
    except Exception as error:  # the runner's own failure: this case is reported as crashed
        result = {"exit_code": None, "signal": 0, "timed_out": False, "truncated": False, "wall": 0.0,
                  "error": repr(error)[:200], "stdout": "", "stderr": ""}
    clean()
    result["case"] = index
    line = (json.dumps(result) + "\n").encode()
    while line:
        line = line[reports.write(line):]
)PY";

std::string base64_decode(const std::string& text) {
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    if (c == '=') break;
    const size_t value = alphabet.find(c);
    if (value == std::string::npos) continue;
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace

std::vector<SandboxResult> run_python_cases_sandboxed(
    const std::vector<SandboxCase>& cases, const SandboxOptions& options,
    const std::function<bool(size_t, const SandboxResult&)>& on_case) {
  std::vector<SandboxResult> results(cases.size());
  std::vector<bool> done(cases.size(), false);
  bool stopped = false;  // on_case asked to stop
  const auto finish = [&](size_t index, SandboxResult result) {
    results[index] = std::move(result);
    done[index] = true;
    if (on_case && !on_case(index, results[index])) stopped = true;
  };
  const auto not_run = [&] {
    for (size_t i = 0; i < cases.size(); ++i) {
      if (!done[i]) {
        results[i].outcome = SandboxOutcome::kRefused;
        results[i].message = "not run: an earlier case decided the result";
      }
    }
  };
  // One by one, in order: unsandboxed runs (allowed or refused) and a missing interpreter are
  // the one-case path's to decide, and so is a program the batch cannot carry (over the size
  // limit, a NUL byte, not UTF-8: then for every case, which shares the program).
  const auto one_by_one = [&] {
    for (size_t i = 0; i < cases.size() && !stopped; ++i) {
      finish(i, run_python_sandboxed(cases[i].program, cases[i].stdin_text, options));
    }
    not_run();
    return results;
  };
  const std::string python = resolve_python(options.python);
  if (cases.empty() || !bubblewrap_available() || python.empty()) return one_by_one();
  std::string job_text;
  try {
    json job_cases = json::array();
    for (const SandboxCase& one : cases) {
      if (one.program.size() > static_cast<size_t>(kMaxProgramBytes) ||
          one.program.find('\0') != std::string::npos) {
        return one_by_one();
      }
      job_cases.push_back({{"program", one.program}, {"stdin", one.stdin_text}});
    }
    job_text = json{{"python", python},
                    {"wall", options.wall_seconds},
                    {"cpu", options.cpu_seconds},
                    {"memory", options.memory_mb << 20},
                    {"file_size", options.file_size_mb << 20},
                    {"cap", options.max_output_bytes},
                    {"cases", std::move(job_cases)}}
                   .dump();
  } catch (const json::exception&) {  // text that is not UTF-8 cannot travel in JSON
    return one_by_one();
  }
  const auto count = static_cast<int64_t>(cases.size());
  SandboxOptions runner = options;
  // the runner's own budget: each case's wall clock plus a start and a clean-up, generously
  runner.wall_seconds = static_cast<double>(count) * (options.wall_seconds + 2.0) + 10.0;
  runner.cpu_seconds = count * 2 + 10;  // the runner's own CPU time; each case has its own limit
  runner.memory_mb = options.memory_mb + 4 * static_cast<int64_t>(job_text.size() >> 20) + 256;
  runner.max_output_bytes = 64 * 1024;  // the runner writes nothing to stdout; errors to stderr
  runner.max_processes = options.max_processes + 1;  // the runner itself

  ReportChannel channel;
  channel.max_bytes = count * (options.max_output_bytes * 3 + 4096) + 4096;
  size_t next = 0;  // the runner reports cases in order
  channel.on_line = [&](const std::string& line) {
    const json report = json::parse(line, nullptr, false);
    if (next >= cases.size() || !report.is_object()) return false;
    SandboxResult result;
    try {
      if (report.at("case").get<size_t>() != next) return false;
      const std::string error = report.at("error").get<std::string>();
      if (!report.at("exit_code").is_null()) result.exit_code = report.at("exit_code").get<int>();
      result.signal = report.at("signal").get<int>();
      result.wall_seconds = report.at("wall").get<double>();
      result.stdout_text = base64_decode(report.at("stdout").get<std::string>());
      result.stderr_text = base64_decode(report.at("stderr").get<std::string>());
      result.truncated = report.at("truncated").get<bool>();
      if (!error.empty()) {
        result.outcome = SandboxOutcome::kCrashed;
        result.message = "the case runner could not run this case: " + error;
      } else if (report.at("timed_out").get<bool>() || result.wall_seconds > options.wall_seconds) {
        result.exit_code = -1;  // killed by the wall clock, as the one-case path reports it
        result.signal = 0;
        result.outcome = SandboxOutcome::kTimeout;
        result.message = "wall clock " + std::to_string(options.wall_seconds).substr(0, 4) + " s";
      } else if (result.truncated) {
        result.exit_code = -1;
        result.signal = 0;
        result.outcome = SandboxOutcome::kFailed;
        result.message = "output over " + std::to_string(options.max_output_bytes) + " bytes";
      } else {
        classify_exit(result, options);
      }
    } catch (const json::exception&) {
      return false;
    }
    finish(next++, std::move(result));
    return !stopped && next < cases.size();
  };
  const SandboxResult run = run_python_sandboxed(kCaseRunner, job_text, runner, &channel);
  if (!stopped) {
    for (size_t k = next; k < cases.size(); ++k) {
      SandboxResult result;
      if (run.outcome == SandboxOutcome::kRefused) {
        result.outcome = SandboxOutcome::kRefused;
        result.message = run.message;
      } else if (run.outcome == SandboxOutcome::kTimeout) {
        result.outcome = SandboxOutcome::kTimeout;
        result.message = "the sandbox's wall clock ran out before this case";
      } else {
        result.outcome = SandboxOutcome::kCrashed;
        result.message = "the case runner stopped before reporting this case (" +
                         (run.message.empty() ? std::string("no report") : run.message) + ")";
      }
      finish(k, std::move(result));
      if (stopped) break;
    }
  }
  not_run();
  return results;
}

}  // namespace gopd::reward
