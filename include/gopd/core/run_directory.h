// The run directory of DESIGN.md ("File formats"): `<run.output_dir>/<run.name>/` holding
// config.resolved.yaml, log.txt and metrics.jsonl (checkpoints/ arrive with the trainer).
// Preparing a run also applies the process-wide settings of the `run` section: seeds and
// LibTorch threads, so that the same config + seed + thread count gives the same numbers.
#pragma once

#include <string>

#include "gopd/core/config.h"

namespace gopd::core {

struct RunDirectory {
  std::string path;
  std::string config_path;   // config.resolved.yaml
  std::string log_path;      // log.txt
  std::string metrics_path;  // metrics.jsonl
};

// Creates the directory (and parents), writes the resolved config atomically, attaches
// log.txt to the logger, seeds LibTorch and C RNGs from run.seed and sets run.threads. With
// `write` false (the ranks of a multi-process job other than rank 0) only the paths are set and
// the process-wide settings applied: nothing is written.
RunDirectory prepare_run(const Config& config, bool write = true);

}  // namespace gopd::core
