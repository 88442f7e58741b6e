// `gopd launch --nproc N [--nnodes M --node-rank R --master-addr A --master-port P] -- ARGS…`:
// starts N local ranks of `gopd ARGS…` with the environment torchrun gives its workers (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), prefixes every line they
// print with their rank, forwards SIGINT/SIGTERM/SIGHUP to them, and when one rank fails stops
// the others (SIGTERM, then SIGKILL after a grace period) and exits with that rank's code.
// Each rank dies with the launcher (PR_SET_PDEATHSIG), so no process outlives the job.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "gopd/core/error.h"

namespace gopd::cli {
namespace {

struct LaunchOptions {
  int64_t nproc = 1;
  int64_t nnodes = 1;
  int64_t node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 0;  // 0: a free port (one node), 29500 (several)
  double grace_s = 10;
  std::vector<std::string> args;
};

volatile sig_atomic_t pending_signal = 0;
void remember_signal(int signal) { pending_signal = signal; }

// A TCP port nobody listens on now (the kernel's choice), for a one-node job's rendezvous.
int64_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    core::throw_runtime_failure(std::string("gopd launch: cannot find a free port: ") +
                                std::strerror(errno));
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

struct Rank {
  int64_t rank = 0;
  pid_t pid = -1;
  int out = -1;  // read ends of its stdout and stderr
  int err = -1;
  std::string out_tail;  // a partial line not yet printed
  std::string err_tail;
  bool running = true;
  int status = 0;
};

// Prints the complete lines of `chunk` (after what was left of the last one) with the prefix.
void relay(std::string& tail, const char* chunk, ssize_t size, const std::string& prefix,
           std::ostream& to) {
  tail.append(chunk, size_t(size));
  size_t start = 0;
  for (size_t newline; (newline = tail.find('\n', start)) != std::string::npos; start = newline + 1)
    to << prefix << tail.substr(start, newline - start) << '\n';
  tail.erase(0, start);
  to.flush();
}

pid_t start_rank(const LaunchOptions& options, int64_t local_rank, int64_t port, Rank& rank) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    core::throw_runtime_failure(std::string("gopd launch: pipe: ") + std::strerror(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) core::throw_runtime_failure(std::string("gopd launch: fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);  // the launcher is already gone
    for (const int signal : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) ::signal(signal, SIG_DFL);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    for (const int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    const auto put = [](const char* name, const std::string& value) {
      ::setenv(name, value.c_str(), 1);
    };
    put("RANK", std::to_string(options.node_rank * options.nproc + local_rank));
    put("WORLD_SIZE", std::to_string(options.nnodes * options.nproc));
    put("LOCAL_RANK", std::to_string(local_rank));
    put("LOCAL_WORLD_SIZE", std::to_string(options.nproc));
    put("GROUP_RANK", std::to_string(options.node_rank));
    put("MASTER_ADDR", options.master_addr);
    put("MASTER_PORT", std::to_string(port));
    ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
    std::vector<char*> argv;
    std::string self = "/proc/self/exe";
    argv.push_back(self.data());
    std::vector<std::string> args = options.args;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(self.c_str(), argv.data());
    std::fprintf(stderr, "gopd launch: cannot start rank %lld: %s\n",
                 static_cast<long long>(local_rank), std::strerror(errno));
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  rank.pid = pid;
  rank.out = out[0];
  rank.err = err[0];
  return pid;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string describe(int status) {
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + ::strsignal(WTERMSIG(status));
  return "exited with code " + std::to_string(exit_code_of(status));
}

int launch(const LaunchOptions& options) {
  if (options.node_rank >= options.nnodes) {
    core::throw_bad_input("gopd launch: --node-rank " + std::to_string(options.node_rank) +
                          " must be below --nnodes " + std::to_string(options.nnodes));
  }
  int64_t port = options.master_port;
  if (port == 0) {
    if (options.nnodes > 1)
      core::throw_bad_input("gopd launch: several nodes need --master-port (the same on each)");
    port = free_port();
  }
  if (options.nnodes > 1 && (options.master_addr == "127.0.0.1" || options.master_addr == "localhost")) {
    core::throw_bad_input("gopd launch: several nodes need --master-addr (node 0's address)");
  }
  ::signal(SIGCHLD, SIG_DFL);  // an inherited SIG_IGN would reap the ranks before waitpid
  struct sigaction action {};
  action.sa_handler = remember_signal;
  for (const int signal : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signal, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<Rank> ranks(size_t(options.nproc));
  for (int64_t i = 0; i < options.nproc; ++i) {
    ranks[size_t(i)].rank = options.node_rank * options.nproc + i;
    start_rank(options, i, port, ranks[size_t(i)]);
  }
  std::cerr << "gopd launch: " << options.nproc << " ranks on this node (" << options.nnodes
            << " node" << (options.nnodes > 1 ? "s" : "") << "), rendezvous "
            << options.master_addr << ":" << port << std::endl;

  int result = 0;
  bool stopping = false;
  auto stop_deadline = std::chrono::steady_clock::time_point::max();
  auto drain_deadline = std::chrono::steady_clock::time_point::max();
  const auto stop_all = [&](int signal) {
    for (Rank& rank : ranks)
      if (rank.running) ::kill(rank.pid, signal);
  };
  for (;;) {
    // Output first: every line a rank printed, with its rank.
    std::vector<pollfd> fds;
    std::vector<std::pair<Rank*, bool>> owners;  // (rank, stdout?)
    for (Rank& rank : ranks) {
      if (rank.out >= 0) {
        fds.push_back({rank.out, POLLIN, 0});
        owners.emplace_back(&rank, true);
      }
      if (rank.err >= 0) {
        fds.push_back({rank.err, POLLIN, 0});
        owners.emplace_back(&rank, false);
      }
    }
    if (!fds.empty() && ::poll(fds.data(), fds.size(), 100) > 0) {
      char buffer[65536];
      for (size_t i = 0; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Rank& rank = *owners[i].first;
        const bool is_out = owners[i].second;
        const ssize_t size = ::read(fds[i].fd, buffer, sizeof buffer);
        const std::string prefix = "[rank " + std::to_string(rank.rank) + "] ";
        if (size > 0) {
          relay(is_out ? rank.out_tail : rank.err_tail, buffer, size, prefix,
                is_out ? std::cout : std::cerr);
        } else if (size == 0 || errno != EINTR) {
          std::string& tail = is_out ? rank.out_tail : rank.err_tail;
          if (!tail.empty()) relay(tail, "\n", 1, prefix, is_out ? std::cout : std::cerr);
          ::close(fds[i].fd);
          (is_out ? rank.out : rank.err) = -1;
        }
      }
    } else if (fds.empty()) {
      ::usleep(100 * 1000);
    }
    if (pending_signal != 0) {
      const int signal = pending_signal;
      pending_signal = 0;
      std::cerr << "gopd launch: " << ::strsignal(signal) << ": passing it to the ranks" << std::endl;
      stop_all(signal);
      if (!stopping) {
        stopping = true;
        result = 128 + signal;
        stop_deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(int64_t(options.grace_s * 1000));
      }
    }
    // Then the ranks that ended.
    bool any_running = false;
    for (Rank& rank : ranks) {
      if (!rank.running) continue;
      int status = 0;
      const pid_t done = ::waitpid(rank.pid, &status, WNOHANG);
      if (done == 0 || (done < 0 && errno == EINTR)) {
        any_running = true;
        continue;
      }
      if (done < 0) status = 1 << 8;  // lost track of it: a failure, exit code 1
      rank.running = false;
      rank.status = status;
      if (exit_code_of(status) != 0 && !stopping) {
        std::cerr << "gopd launch: rank " << rank.rank << " " << describe(status)
                  << "; stopping the other ranks" << std::endl;
        result = exit_code_of(status);
        stopping = true;
        stop_all(SIGTERM);
        stop_deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(int64_t(options.grace_s * 1000));
      }
    }
    if (stopping && std::chrono::steady_clock::now() > stop_deadline) {
      stop_all(SIGKILL);
      stop_deadline = std::chrono::steady_clock::time_point::max();
    }
    const bool output_open = std::any_of(ranks.begin(), ranks.end(), [](const Rank& rank) {
      return rank.out >= 0 || rank.err >= 0;
    });
    if (!any_running) {
      // What the ranks printed last (their errors) is still in the pipes: read it to the end,
      // for at most two seconds (a process a rank started may hold a pipe open).
      if (!output_open) break;
      if (drain_deadline == std::chrono::steady_clock::time_point::max())
        drain_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      if (std::chrono::steady_clock::now() > drain_deadline) break;
    }
  }
  for (Rank& rank : ranks) {
    const std::string prefix = "[rank " + std::to_string(rank.rank) + "] ";
    if (!rank.out_tail.empty()) relay(rank.out_tail, "\n", 1, prefix, std::cout);
    if (!rank.err_tail.empty()) relay(rank.err_tail, "\n", 1, prefix, std::cerr);
    for (const int fd : {rank.out, rank.err})
      if (fd >= 0) ::close(fd);
  }
  return result;
}

}  // namespace

Command add_launch_command(CLI::App& parent) {
  CLI::App* launch_app = parent.add_subcommand(
      "launch", "start the ranks of a multi-process job on this node (torchrun-compatible env)");
  auto options = std::make_shared<LaunchOptions>();
  launch_app->add_option("--nproc", options->nproc, "ranks (processes) on this node")
      ->check(CLI::Range(int64_t(1), int64_t(1024)))
      ->capture_default_str();
  launch_app->add_option("--nnodes", options->nnodes, "nodes of the job")
      ->check(CLI::Range(int64_t(1), int64_t(100000)))
      ->capture_default_str();
  launch_app->add_option("--node-rank", options->node_rank, "this node's index (0 … nnodes-1)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  launch_app->add_option("--master-addr", options->master_addr,
                         "address of node 0 (its rank 0 hosts the rendezvous store)")
      ->capture_default_str();
  launch_app->add_option("--master-port", options->master_port,
                         "rendezvous port (default: a free one on a single node)")
      ->check(CLI::Range(int64_t(1), int64_t(65535)));
  launch_app->add_option("--grace", options->grace_s,
                         "seconds the other ranks get to stop after one failed, before SIGKILL")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  launch_app->add_option("ARGS", options->args, "the gopd subcommand each rank runs, after --")
      ->required();
  return Command{launch_app, [options] {
                   const int code = launch(*options);
                   std::cout.flush();
                   std::cerr.flush();
                   if (code != 0) std::exit(code);
                 }};
}

}  // namespace gopd::cli
