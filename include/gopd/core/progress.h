// Progress display for long loops: a redrawn bar when stderr is a terminal, plain periodic
// lines otherwise (CI logs, files), so both a person and a log reader can follow a job.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace gopd::core {

class Progress {
 public:
  // `total` > 0 items; output goes to `stream` (stderr by default). `interactive` defaults to
  // isatty(stream); plain mode prints a line every `plain_every_percent` percent (default 10).
  // Nothing is shown before `quiet_seconds` have passed, so short loops stay silent.
  Progress(std::string label, int64_t total, std::FILE* stream = stderr, int interactive = -1,
           int64_t plain_every_percent = 10, double quiet_seconds = 0.0);
  ~Progress();

  void advance(int64_t items = 1);
  void finish();  // prints the final state once; idempotent

 private:
  void render(bool final_line);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  std::FILE* stream_;
  bool interactive_;
  int64_t plain_every_percent_;
  int64_t last_plain_percent_ = 0;  // plain lines start at the first full step (10%)
  double quiet_seconds_;
  bool finished_ = false;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace gopd::core
