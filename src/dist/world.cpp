// The process's place in a multi-process job: see world.h.
#include "gopd/dist/world.h"

#include <cstdlib>

#include "gopd/core/error.h"

extern char** environ;

namespace gopd::dist {
namespace {

using Environment = std::map<std::string, std::string>;

const std::string* find(const Environment& environment, const std::string& name) {
  const auto found = environment.find(name);
  return found == environment.end() || found->second.empty() ? nullptr : &found->second;
}

int64_t integer(const Environment& environment, const std::string& name, int64_t fallback,
                int64_t minimum) {
  const std::string* text = find(environment, name);
  if (!text) return fallback;
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  // SLURM_NTASKS_PER_NODE may read "4(x2)": the count before the repetition.
  if (used == 0 || (used != text->size() && (*text)[used] != '(')) {
    core::throw_bad_input("environment variable " + name + "='" + *text + "' is not an integer");
  }
  if (value < minimum) {
    core::throw_bad_input("environment variable " + name + "=" + *text + " must be at least " +
                          std::to_string(minimum));
  }
  return value;
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  const size_t bracket = nodelist.find('[');
  const size_t comma = nodelist.find(',');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) {
    return nodelist.substr(0, comma);
  }
  const std::string prefix = nodelist.substr(0, bracket);
  const size_t end = nodelist.find_first_of("-,]", bracket + 1);
  if (end == std::string::npos) core::throw_bad_input("SLURM_JOB_NODELIST '" + nodelist + "' is malformed");
  return prefix + nodelist.substr(bracket + 1, end - bracket - 1);
}

World world_from(const Environment& environment) {
  World world;
  if (find(environment, "RANK") || find(environment, "WORLD_SIZE")) {
    world.source = "torchrun environment";
    world.world_size = integer(environment, "WORLD_SIZE", 1, 1);
    world.rank = integer(environment, "RANK", 0, 0);
    world.local_world_size = integer(environment, "LOCAL_WORLD_SIZE", world.world_size, 1);
    world.local_rank = integer(environment, "LOCAL_RANK", world.rank % world.local_world_size, 0);
  } else if (find(environment, "SLURM_PROCID") && find(environment, "SLURM_STEP_NUM_TASKS")) {
    // A task of an srun step (the step's own counts: a batch script, one task of its job,
    // stays one process whatever the job's --ntasks).
    world.source = "SLURM";
    world.world_size = integer(environment, "SLURM_STEP_NUM_TASKS", 1, 1);
    world.rank = integer(environment, "SLURM_PROCID", 0, 0);
    world.local_rank = integer(environment, "SLURM_LOCALID", 0, 0);
    world.local_world_size = integer(environment, "SLURM_STEP_TASKS_PER_NODE", 1, 1);
    if (!find(environment, "MASTER_ADDR") && world.world_size > 1) {
      const std::string* nodes = find(environment, "SLURM_JOB_NODELIST");
      if (!nodes) nodes = find(environment, "SLURM_NODELIST");
      if (!nodes) {
        core::throw_bad_input("SLURM: set MASTER_ADDR (no SLURM_JOB_NODELIST to take the first "
                              "node from)");
      }
      world.master_addr = first_slurm_host(*nodes);
    }
  } else {
    return world;
  }
  if (world.rank >= world.world_size) {
    core::throw_bad_input("environment: rank " + std::to_string(world.rank) +
                          " is not below the world size " + std::to_string(world.world_size) +
                          " (" + world.source + ")");
  }
  if (world.local_rank >= world.local_world_size) world.local_world_size = world.local_rank + 1;
  if (const std::string* address = find(environment, "MASTER_ADDR")) world.master_addr = *address;
  world.master_port = integer(environment, "MASTER_PORT", world.master_port, 1);
  if (world.master_port > 65535) {
    core::throw_bad_input("environment variable MASTER_PORT=" + std::to_string(world.master_port) +
                          " is not a port");
  }
  return world;
}

World world_from_env() {
  Environment environment;
  for (char** entry = environ; entry && *entry; ++entry) {
    const std::string text(*entry);
    const size_t equals = text.find('=');
    if (equals != std::string::npos) environment[text.substr(0, equals)] = text.substr(equals + 1);
  }
  return world_from(environment);
}

}  // namespace gopd::dist
