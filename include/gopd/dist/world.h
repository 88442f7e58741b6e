// Where this process sits in a multi-process job (DESIGN.md "Scale-out plan"), read from the
// environment that torchrun, SLURM's srun and `gopd launch` set: RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun's names); under srun without them,
// the srun step's SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE
// and the first host of SLURM_JOB_NODELIST (a batch script itself stays one process). Without either, one process: rank 0 of 1. Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace gopd::dist {

struct World {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  int64_t local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::string source = "single process";  // "torchrun environment", "SLURM", "single process"

  bool distributed() const { return world_size > 1; }
  bool leader() const { return rank == 0; }
};

// The world of an environment (name → value); bad input (exit 2) naming the variable when a
// value is malformed or inconsistent (RANK ≥ WORLD_SIZE, a missing MASTER_ADDR under SLURM
// without a node list).
World world_from(const std::map<std::string, std::string>& environment);
// The world of this process's environment.
World world_from_env();

// The first host name of a SLURM node list: "node[03-05,9]" → "node03", "a,b" → "a".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace gopd::dist
