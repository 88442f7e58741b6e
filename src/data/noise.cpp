// Implements inject_noise (include/gopd/data/noise.h). Every random choice goes through
// core::Rng so a seed gives the same noisy prompt on every compiler and standard library.
#include "gopd/data/noise.h"

#include <cmath>
#include <cstdint>
#include <sstream>
#include <utility>

#include "gopd/core/error.h"

namespace gopd::data {
namespace {

// How a distractor is drawn: mostly words, some numbers, a little punctuation. Numbers are
// kept because they are the distractors that really derail arithmetic, which is what LENS
// is meant to detect.
constexpr double kWordShare = 0.6;
constexpr double kNumberShare = 0.25;  // the rest is punctuation
constexpr int64_t kMaxDistractorNumber = 99;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string draw_distractor(core::Rng& rng) {
  const double kind = rng.uniform01();
  if (kind < kWordShare) {
    const auto& words = distractor_words();
    return words[rng.uniform_int(0, static_cast<int64_t>(words.size()) - 1)];
  }
  if (kind < kWordShare + kNumberShare) {
    return std::to_string(rng.uniform_int(0, kMaxDistractorNumber));
  }
  const auto& marks = distractor_punctuation();
  return marks[rng.uniform_int(0, static_cast<int64_t>(marks.size()) - 1)];
}

}  // namespace

const std::vector<std::string>& distractor_words() {
  // Concrete, task-irrelevant words; none of them occurs in the arith or code prompts.
  static const std::vector<std::string> words = {
      "banana", "purple",  "quietly", "umbrella", "pillow", "garden", "whisper", "marble",
      "velvet", "lantern", "pebble",  "meadow",   "teapot", "breeze", "violet",  "copper",
      "candle", "saddle",  "harbor",  "giraffe",  "softly", "maybe",  "indeed",  "yellow"};
  return words;
}

const std::vector<std::string>& distractor_punctuation() {
  static const std::vector<std::string> marks = {";", "...", "#", "--"};
  return marks;
}

std::string inject_noise(const std::string& prompt, double rate, core::Rng& rng) {
  if (!(rate >= 0.0 && rate < 1.0)) {
    std::ostringstream message;
    message << "noise rate: expected a number in [0, 1), got " << rate;
    core::throw_bad_input(message.str());
  }
  if (rate == 0.0) return prompt;

  // Byte offsets where words start; distractors go right before them so the original
  // whitespace is kept exactly.
  std::vector<int64_t> word_starts;
  const int64_t size = static_cast<int64_t>(prompt.size());
  for (int64_t i = 0; i < size; ++i) {
    if (!is_space(prompt[i]) && (i == 0 || is_space(prompt[i - 1]))) word_starts.push_back(i);
  }
  const int64_t words = static_cast<int64_t>(word_starts.size());
  if (words == 0) return prompt;

  // Stochastic rounding: E[count] = rate * words exactly, with far less variance than one
  // coin flip per word.
  const double expected = rate * static_cast<double>(words);
  int64_t count = static_cast<int64_t>(std::floor(expected));
  if (rng.uniform01() < expected - static_cast<double>(count)) ++count;

  // Choose `count` distinct positions by a partial Fisher-Yates shuffle.
  std::vector<int64_t> positions(words);
  for (int64_t i = 0; i < words; ++i) positions[i] = i;
  std::vector<bool> chosen(words, false);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = rng.uniform_int(i, words - 1);
    std::swap(positions[i], positions[j]);
    chosen[positions[i]] = true;
  }

  // Draw the distractors in word order so the output depends only on the chosen set.
  std::string noisy;
  noisy.reserve(prompt.size() + static_cast<size_t>(count) * 8);
  int64_t copied = 0;
  for (int64_t w = 0; w < words; ++w) {
    if (!chosen[w]) continue;
    noisy.append(prompt, copied, word_starts[w] - copied);
    noisy += draw_distractor(rng);
    noisy += ' ';
    copied = word_starts[w];
  }
  noisy.append(prompt, copied, std::string::npos);
  return noisy;
}

}  // namespace gopd::data
