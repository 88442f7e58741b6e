// Prompt noise injection for the LENS experiments (DESIGN.md, "Built-in synthetic tasks"):
// distractor tokens — irrelevant words, random numbers, stray punctuation — are inserted
// between the words of a prompt. The original words keep their order and their exact
// surrounding whitespace, so the gold answer is unchanged and deleting the distractors gives
// the clean prompt back byte for byte. Nothing marks a distractor in-band: finding them is
// the job of LENS's interference scores.
#pragma once

#include <string>
#include <vector>

#include "gopd/core/rng.h"

namespace gopd::data {

// Inserts distractor tokens into `prompt` at a fraction `rate` of its word positions
// (whitespace-separated tokens; rate in [0, 1)), using `rng`. A distractor is placed
// immediately before a chosen word, followed by one space; at most one per word. The number
// of distractors is rate * words, stochastically rounded, so its expectation is exact even
// for short prompts. Never alters the original words or their order; rate 0 (or a prompt
// without words) returns `prompt` unchanged and draws nothing from `rng`.
// Throws core::Error (exit code 2) when rate is outside [0, 1).
std::string inject_noise(const std::string& prompt, double rate, core::Rng& rng);

// The fixed list of irrelevant words a distractor may be (for tests and analysis).
const std::vector<std::string>& distractor_words();
// The fixed list of punctuation distractors.
const std::vector<std::string>& distractor_punctuation();

}  // namespace gopd::data
