// Implements the TTY bar / plain-line progress display.
#include "gopd/core/progress.h"

#include <unistd.h>

#include <algorithm>

namespace gopd::core {

Progress::Progress(std::string label, int64_t total, std::FILE* stream, int interactive,
                   int64_t plain_every_percent, double quiet_seconds)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      stream_(stream),
      interactive_(interactive < 0 ? ::isatty(::fileno(stream)) != 0 : interactive != 0),
      plain_every_percent_(std::max<int64_t>(plain_every_percent, 1)),
      quiet_seconds_(quiet_seconds),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t items) {
  done_ = std::min(done_ + items, total_);
  render(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  render(true);
}

void Progress::render(bool final_line) {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const int64_t percent = done_ * 100 / total_;
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  // A loop that ends inside the quiet period shows nothing at all.
  if (elapsed < quiet_seconds_ && !(final_line && shown_)) return;
  shown_ = true;
  if (interactive_) {
    // Redraw at most ~10 times a second; a bar of 30 cells.
    if (!final_line && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int64_t filled = done_ * 30 / total_;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(30, '.');
    std::fprintf(stream_, "\r%s [%s] %lld/%lld %3lld%% %.1f/s %.1fs%s", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_),
                 static_cast<long long>(percent), rate, elapsed, final_line ? "\n" : "");
  } else {
    const int64_t bucket = percent / plain_every_percent_;
    if (!final_line && bucket == last_plain_percent_) return;
    if (final_line && last_plain_percent_ == bucket && done_ == total_) return;
    last_plain_percent_ = bucket;
    std::fprintf(stream_, "%s: %lld/%lld (%lld%%) %.1f/s %.1fs\n", label_.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_),
                 static_cast<long long>(percent), rate, elapsed);
  }
  std::fflush(stream_);
}

}  // namespace gopd::core
