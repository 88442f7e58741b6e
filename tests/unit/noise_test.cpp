// Tests for inject_noise (include/gopd/data/noise.h): the clean prompt survives byte for
// byte under the distractors, the inserted fraction matches the rate, and the output is a
// pure function of the seed.
#include "gopd/data/noise.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "gopd/core/error.h"
#include "gopd/core/rng.h"
#include "gopd/data/tasks.h"

namespace gopd::data {
namespace {

struct Token {
  std::string text;
  size_t start;
};

std::vector<Token> split_words(const std::string& text) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) tokens.push_back({text.substr(start, i - start), start});
  }
  return tokens;
}

bool is_distractor(const std::string& token) {
  const auto& words = distractor_words();
  const auto& marks = distractor_punctuation();
  if (std::find(words.begin(), words.end(), token) != words.end()) return true;
  if (std::find(marks.begin(), marks.end(), token) != marks.end()) return true;
  if (token.empty() || token.size() > 2) return false;
  return std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Aligns the clean words as an in-order subsequence of the noisy words; returns the
// unmatched (inserted) tokens, or fails the test when the clean words are not a subsequence.
std::vector<Token> inserted_tokens(const std::string& clean, const std::string& noisy) {
  const std::vector<Token> clean_words = split_words(clean);
  const std::vector<Token> noisy_words = split_words(noisy);
  std::vector<Token> inserted;
  size_t next = 0;
  for (const Token& token : noisy_words) {
    if (next < clean_words.size() && token.text == clean_words[next].text) {
      ++next;
    } else {
      inserted.push_back(token);
    }
  }
  EXPECT_EQ(next, clean_words.size()) << "clean words are not a subsequence of: " << noisy;
  return inserted;
}

// Deletes each inserted token and the one space after it.
std::string remove_tokens(std::string noisy, const std::vector<Token>& inserted) {
  for (auto it = inserted.rbegin(); it != inserted.rend(); ++it) {
    EXPECT_EQ(noisy[it->start + it->text.size()], ' ');
    noisy.erase(it->start, it->text.size() + 1);
  }
  return noisy;
}

std::vector<std::string> sample_prompts() {
  std::vector<std::string> prompts;
  for (const std::string& task : task_names()) {
    for (int64_t difficulty = 1; difficulty <= 5; ++difficulty) {
      TaskOptions options;
      options.task = task;
      options.count = 100;
      options.seed = 11;
      options.difficulty = difficulty;
      options.split = "all";
      for (const Record& record : generate_task(options)) {
        prompts.push_back(record.prompt.get<std::string>());
      }
    }
  }
  // Odd whitespace must survive exactly.
  prompts.push_back("  Leading spaces,\ttabs\nand two\n\nnewlines  ");
  prompts.push_back("one");
  return prompts;
}

TEST(NoiseTest, RateZeroReturnsPromptAndDrawsNothing) {
  core::Rng rng(5);
  core::Rng untouched(5);
  const std::string prompt = "Start with 3. Add 4. What is the result?";
  EXPECT_EQ(inject_noise(prompt, 0.0, rng), prompt);
  EXPECT_EQ(rng.next_u64(), untouched.next_u64());
}

TEST(NoiseTest, PromptWithoutWordsIsUnchanged) {
  core::Rng rng(5);
  EXPECT_EQ(inject_noise("", 0.5, rng), "");
  EXPECT_EQ(inject_noise(" \n\t ", 0.5, rng), " \n\t ");
}

TEST(NoiseTest, RemovingDistractorsRestoresPromptExactly) {
  core::Rng rng(17);
  int64_t changed = 0;
  for (const std::string& prompt : sample_prompts()) {
    const std::string noisy = inject_noise(prompt, 0.3, rng);
    const std::vector<Token> inserted = inserted_tokens(prompt, noisy);
    for (const Token& token : inserted) EXPECT_TRUE(is_distractor(token.text)) << token.text;
    EXPECT_EQ(remove_tokens(noisy, inserted), prompt);
    changed += noisy != prompt ? 1 : 0;
  }
  EXPECT_GT(changed, 900);  // 1002 prompts; only the one-word prompt may stay clean
}

TEST(NoiseTest, InsertedFractionMatchesRate) {
  const std::vector<std::string> prompts = sample_prompts();
  for (const double rate : {0.05, 0.2, 0.5, 0.9}) {
    core::Rng rng(23);
    int64_t words = 0;
    int64_t inserted = 0;
    for (const std::string& prompt : prompts) {
      const int64_t prompt_words = static_cast<int64_t>(split_words(prompt).size());
      const int64_t count =
          static_cast<int64_t>(inserted_tokens(prompt, inject_noise(prompt, rate, rng)).size());
      // Stochastic rounding: each prompt gets floor or ceil of rate * words.
      const double expected = rate * static_cast<double>(prompt_words);
      EXPECT_GE(count, static_cast<int64_t>(std::floor(expected)));
      EXPECT_LE(count, static_cast<int64_t>(std::ceil(expected)));
      words += prompt_words;
      inserted += count;
    }
    // ~14,000 words: the per-prompt rounding noise (sd <= 0.5) gives a total-fraction sd
    // under 0.001, so 0.005 is a loose bound.
    EXPECT_NEAR(static_cast<double>(inserted) / static_cast<double>(words), rate, 0.005)
        << "rate " << rate;
  }
}

TEST(NoiseTest, DistractorKindsFollowTheirShares) {
  core::Rng rng(29);
  int64_t word_count = 0, number_count = 0, mark_count = 0;
  const auto& words = distractor_words();
  const auto& marks = distractor_punctuation();
  for (const std::string& prompt : sample_prompts()) {
    for (const Token& token : inserted_tokens(prompt, inject_noise(prompt, 0.5, rng))) {
      if (std::find(words.begin(), words.end(), token.text) != words.end()) {
        ++word_count;
      } else if (std::find(marks.begin(), marks.end(), token.text) != marks.end()) {
        ++mark_count;
      } else {
        ++number_count;
      }
    }
  }
  const double total = static_cast<double>(word_count + number_count + mark_count);
  ASSERT_GT(total, 5000);
  EXPECT_NEAR(word_count / total, 0.60, 0.03);
  EXPECT_NEAR(number_count / total, 0.25, 0.03);
  EXPECT_NEAR(mark_count / total, 0.15, 0.03);
}

TEST(NoiseTest, DeterministicForASeed) {
  const std::string prompt =
      "Start with 12. Add 7. Multiply the result by 3. Subtract 5. What is the final number?";
  core::Rng first(99);
  core::Rng second(99);
  core::Rng other(100);
  int64_t differ = 0;
  for (int64_t i = 0; i < 50; ++i) {
    const std::string a = inject_noise(prompt, 0.25, first);
    EXPECT_EQ(a, inject_noise(prompt, 0.25, second));
    differ += a != inject_noise(prompt, 0.25, other) ? 1 : 0;
  }
  EXPECT_GT(differ, 45);
  // Golden value: guards the byte-identical promise across compilers and libraries.
  core::Rng golden(1);
  EXPECT_EQ(inject_noise(prompt, 0.25, golden),
            "Start with 12. Add violet 7. purple Multiply the result by 3. purple Subtract 5. "
            "... What is the final number?");
}

TEST(NoiseTest, BadRateIsBadInput) {
  core::Rng rng(1);
  for (const double rate : {1.0, -0.25, std::nan("")}) {
    try {
      inject_noise("a b", rate, rng);
      FAIL() << "no error for rate " << rate;
    } catch (const core::Error& error) {
      EXPECT_EQ(error.exit_code(), 2);
      EXPECT_EQ(std::string(error.what()).rfind("noise rate: expected a number in [0, 1), got ", 0),
                0u);
    }
  }
  try {
    inject_noise("a b", 1.0, rng);
  } catch (const core::Error& error) {
    EXPECT_STREQ(error.what(), "noise rate: expected a number in [0, 1), got 1");
  }
}

}  // namespace
}  // namespace gopd::data
