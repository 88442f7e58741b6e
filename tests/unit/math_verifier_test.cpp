// Tests for the math verifier: a table of (response, gold, expected) cases run through
// verify_math — extraction, notation that must match, and near-misses that must not — plus
// direct checks of extract_final_answer and normalize_answer.
#include "gopd/reward/math_verifier.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gopd::reward {
namespace {

struct MathCase {
  const char* response;
  const char* gold;
  bool expected;
};

const std::vector<MathCase>& math_cases() {
  static const std::vector<MathCase> kCases = {
      // Extraction: boxes, nesting, last box wins, \fbox, phrases, ####.
      {"So the result is \\boxed{42}.", "42", true},
      {"\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}", true},
      {"\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}", true},
      {"First \\boxed{3}, but correcting myself: \\boxed{4}", "4", true},
      {"First \\boxed{3}, but correcting myself: \\boxed{4}", "3", false},
      {"\\fbox{7}", "7", true},
      {"$\\boxed 5$", "5", true},
      {"We get \\boxed{2} and then \\boxed{9", "2", true},  // unclosed last box is ignored
      {"\\boxed{\\{1, 2\\}}", "\\{1,2\\}", true},
      {"\\boxed{\\boxed{8}}", "8", true},
      {"Adding them, the answer is 7.", "7", true},
      {"The final answer is $\\frac{3}{4}$.", "0.75", true},
      {"THE ANSWER IS: 12", "12", true},
      {"The answer is **15**.", "15", true},
      {"the answer is 3.5. Done.", "7/2", true},
      {"Natalia sold 48 clips.\n#### 72", "72", true},
      {"#### 1,234", "1234", true},
      {"The answer is 5.\n#### 6", "5", true},  // the phrase comes before ####
      {"I have no idea.", "5", false},
      {"", "5", false},
      // Fractions and decimals.
      {"\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", true},
      {"\\boxed{\\tfrac{1}{2}}", "0.5", true},
      {"\\boxed{1/2}", "\\frac{1}{2}", true},
      {"\\boxed{0.5}", "\\frac12", true},
      {"\\boxed{.5}", "1/2", true},
      {"\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", true},
      {"\\boxed{\\frac{1}{3}}", "0.3333333333", true},
      {"\\boxed{\\frac{1}{3}}", "0.33", false},
      {"\\boxed{-\\frac{1}{2}}", "\\frac{-1}{2}", true},
      {"\\boxed{-\\frac{1}{2}}", "-0.5", true},
      {"\\boxed{\\frac{3}{2}}", "1.5", true},
      {"\\boxed{\\frac 3 2}", "1.5", true},
      {"\\boxed{2.50}", "2.5", true},
      {"\\boxed{52.0}", "52", true},
      {"\\boxed{3.00}", "3", true},
      {"\\boxed{2\\frac{1}{2}}", "2.5", false},  // mixed number vs product: refused
      {"\\boxed{2 1/2}", "10.5", false},         // not 21/2 once spaces are gone
      {"\\boxed{2 1/2}", "2 1/2", true},
      // Negatives and signs.
      {"\\boxed{-3}", "-3", true},
      {"\\boxed{\xE2\x88\x92"
       "3}",
       "-3", true},  // Unicode minus
      {"\\boxed{- 3}", "-3", true},
      {"\\boxed{+3}", "3", true},
      {"\\boxed{(-3)}", "-3", true},
      // Thousands separators.
      {"\\boxed{1,000}", "1000", true},
      {"\\boxed{1{,}000}", "1000", true},
      {"\\boxed{1\\,000}", "1000", true},
      {"\\boxed{12,345,678}", "12345678", true},
      {"\\boxed{1,234.5}", "1234.5", true},
      {"\\boxed{\\$1,500}", "1500", true},
      // Percent.
      {"\\boxed{50\\%}", "50", true},
      {"\\boxed{50\\%}", "0.5", true},
      {"\\boxed{50}", "50\\%", true},
      {"\\boxed{25%}", "25", true},
      {"\\boxed{50 \\text{ percent}}", "0.5", true},
      {"\\boxed{50}", "0.5", false},
      // Degrees.
      {"\\boxed{90^\\circ}", "90", true},
      {"\\boxed{90^{\\circ}}", "90", true},
      {"\\boxed{45\xC2\xB0}", "45", true},
      {"\\boxed{30^\\circ}", "60", false},
      // Units in \text{} and plain words.
      {"\\boxed{5\\text{ cm}}", "5", true},
      {"\\boxed{\\text{5}}", "5", true},
      {"\\boxed{12\\text{ cm}^2}", "12", true},
      {"\\boxed{10\\mbox{ meters}}", "10", true},
      {"\\boxed{7\\mathrm{m}}", "7", true},
      {"The answer is 18 apples.", "18", true},
      {"\\boxed{3 \\text{ square units}}", "3", true},
      {"\\boxed{\\text{Monday}}", "\\text{Monday}", true},
      // Variable assignment.
      {"\\boxed{x = 3}", "3", true},
      {"\\boxed{y=-2}", "-2", true},
      {"\\boxed{3}", "x=3", true},
      {"\\boxed{x = 4}", "3", false},
      {"\\boxed{x=1, y=2}", "1,2", true},
      // Dollars and LaTeX spacing.
      {"The answer is $12$.", "12", true},
      {"\\boxed{\\left( 1 , 2 \\right)}", "(1,2)", true},
      {"\\boxed{3\\!}", "3", true},
      {"\\boxed{\\quad 6 \\;}", "6", true},
      {"\\boxed{8~}", "8", true},
      {"\\boxed{\\ 9}", "9", true},
      {"\\boxed{2 \\pi}", "2\\pi", true},
      {"\\boxed{\\displaystyle\\frac{1}{4}}", "0.25", true},
      // \pi stays symbolic, other expressions evaluate.
      {"\\boxed{\\pi + \\pi}", "2\\pi", true},
      {"\\boxed{\\frac{\\pi}{2}}", "\\frac{1}{2}\\pi", true},
      {"\\boxed{3.14159265}", "\\pi", false},
      {"\\boxed{3\\sqrt{2}}", "\\sqrt{18}", true},
      {"\\boxed{2^{10}}", "1024", true},
      {"\\boxed{10^6}", "1000000", true},
      {"\\boxed{10^6}", "1000001", false},
      {"\\boxed{\\sqrt[3]{27}}", "3", true},
      {"\\boxed{\\sqrt[3]{-8}}", "-2", true},
      {"\\boxed{2\\times10^{3}}", "2000", true},
      {"\\boxed{0.1 + 0.2}", "0.3", true},
      {"\\boxed{\\frac{1}{2}}", "\\frac{1}{3}", false},
      {"\\boxed{\\pi r^2}", "\\pi r^2", true},
      {"\\boxed{x \\in [1, 2]}", "[1,2]", true},
      {"\\boxed{\\theta = 30^\\circ}", "30", true},
      {"\\boxed{0.05}", "5\\%", true},
      {"\\boxed{5}", "0.05", false},
      // Tuples, intervals, sets.
      {"\\boxed{(1, 2)}", "(1,2)", true},
      {"\\boxed{(2, 1)}", "(1,2)", false},
      {"\\boxed{(0.5, 3)}", "(\\frac{1}{2}, 3)", true},
      {"\\boxed{(1,2]}", "(1,2]", true},
      {"\\boxed{(1,2]}", "(1,2)", false},
      {"\\boxed{[1,2)}", "(1,2)", false},
      {"\\boxed{\\{2, 1\\}}", "\\{1,2\\}", true},
      {"\\boxed{\\{1, 3\\}}", "\\{1,2\\}", false},
      {"\\boxed{2, 1}", "1, 2", true},
      {"\\boxed{1, 2, 3}", "1, 2", false},
      {"\\boxed{(-\\infty, 3)}", "(-\\infty,3)", true},
      {"\\boxed{(3,4) \\cup (1,2)}", "(1,2)\\cup(3,4)", true},
      {"\\boxed{(1,2)}", "[1,2]", false},
      // Near-misses.
      {"\\boxed{10}", "100", false},
      {"\\boxed{100}", "10", false},
      {"\\boxed{1/2}", "2", false},
      {"\\boxed{-3}", "3", false},
      {"\\boxed{3}", "-3", false},
      {"\\boxed{3.14}", "3.15", false},
      {"\\boxed{12}", "1,2", false},
      {"\\boxed{(1,2)}", "12", false},
      {"\\boxed{}", "5", false},
      {"\\boxed{ }", "0", false},
      {"\\boxed{1000000}", "1000001", false},
      {"\\boxed{x}", "y", false},
      {"\\boxed{3 x}", "3", false},
      {"\\boxed{2\\mathrm{i}}", "2", false},
      {"\\boxed{3 and 4}", "3", false},
  };
  return kCases;
}

TEST(MathVerifierTest, TableOfResponses) {
  const std::vector<MathCase>& cases = math_cases();
  ASSERT_GE(cases.size(), 90u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const MathCase& c = cases[i];
    SCOPED_TRACE("case " + std::to_string(i) + ": response \"" + c.response + "\" gold \"" +
                 c.gold + "\"");
    Verdict verdict = verify_math(c.response, c.gold);
    EXPECT_EQ(verdict.reward, c.expected ? 1.0 : 0.0);
  }
}

TEST(MathVerifierTest, EquivalenceIsSymmetricOnTheTable) {
  // Each table case with an extractable answer must give the same result in both directions.
  for (const MathCase& c : math_cases()) {
    std::optional<std::string> answer = extract_final_answer(c.response);
    if (!answer) continue;
    SCOPED_TRACE(std::string("answer \"") + *answer + "\" gold \"" + c.gold + "\"");
    EXPECT_EQ(answers_equivalent(*answer, c.gold), answers_equivalent(c.gold, *answer));
  }
}

TEST(MathVerifierTest, ExtractReturnsInnerTextOfLastBox) {
  EXPECT_EQ(extract_final_answer("so \\boxed{\\frac{1}{\\sqrt{2}}} done"),
            std::optional<std::string>("\\frac{1}{\\sqrt{2}}"));
  EXPECT_EQ(extract_final_answer("\\boxed{1} then \\fbox{ 2 }"), std::optional<std::string>(" 2 "));
  EXPECT_EQ(extract_final_answer("\\boxed{\\{1,2\\}}"), std::optional<std::string>("\\{1,2\\}"));
  EXPECT_EQ(extract_final_answer("\\boxed{}"), std::optional<std::string>(""));
  EXPECT_EQ(extract_final_answer("$\\boxed 17$."), std::optional<std::string>("17"));
  EXPECT_EQ(extract_final_answer("\\boxed{5} and \\boxed{6"), std::optional<std::string>("5"));
}

TEST(MathVerifierTest, ExtractFallsBackToPhrasesAndHashes) {
  EXPECT_EQ(extract_final_answer("Thus the answer is 7."), std::optional<std::string>("7"));
  EXPECT_EQ(extract_final_answer("The answer is 3.25 cm.\nCheck: ok"),
            std::optional<std::string>("3.25 cm"));
  EXPECT_EQ(extract_final_answer("The final answer is $x=2$. I hope"),
            std::optional<std::string>("$x=2$"));
  EXPECT_EQ(extract_final_answer("the answer is 1. No wait, the answer is 2."),
            std::optional<std::string>("2"));
  EXPECT_EQ(extract_final_answer("work\n#### 42\n"), std::optional<std::string>("42"));
  EXPECT_EQ(extract_final_answer("no final answer here"), std::nullopt);
  EXPECT_EQ(extract_final_answer("the answer is"), std::nullopt);
}

TEST(MathVerifierTest, ExtractHandlesHostileInputQuickly) {
  // 200k unclosed boxes must not take quadratic time; the one closed box before them wins.
  std::string response = "\\boxed{1}";
  for (int64_t i = 0; i < 200000; ++i) response += "\\boxed{";
  EXPECT_EQ(extract_final_answer(response), std::optional<std::string>("1"));
  // Unclosed groups and deep nesting just under the verbatim-only length stay fast and false.
  std::string parentheses(4000, '(');
  EXPECT_FALSE(answers_equivalent(parentheses, "1"));
  std::string texts;
  while (texts.size() < 4000) texts += "\\text{";
  EXPECT_FALSE(answers_equivalent(texts, "1"));
  EXPECT_FALSE(answers_equivalent(std::string(100000, '('), "1"));
}

TEST(MathVerifierTest, NormalizeProducesCanonicalForms) {
  EXPECT_EQ(normalize_answer("\\dfrac{1}{2}"), "\\frac{1}{2}");
  EXPECT_EQ(normalize_answer("\\frac12"), "\\frac{1}{2}");
  EXPECT_EQ(normalize_answer("1/2"), "\\frac{1}{2}");
  EXPECT_EQ(normalize_answer("\\left( 1, 2 \\right)"), "(1,2)");
  EXPECT_EQ(normalize_answer("1{,}000"), "1000");
  EXPECT_EQ(normalize_answer("1,000,000"), "1000000");
  EXPECT_EQ(normalize_answer("1,2"), "1,2");
  EXPECT_EQ(normalize_answer("5\\text{ cm}"), "5");
  EXPECT_EQ(normalize_answer("\\text{5}"), "5");
  EXPECT_EQ(normalize_answer("x = 3"), "3");
  EXPECT_EQ(normalize_answer("90^\\circ"), "90");
  EXPECT_EQ(normalize_answer("50\\%"), "50");
  EXPECT_EQ(normalize_answer("$2.50$"), "2.5");
  EXPECT_EQ(normalize_answer("3.0"), "3");
  EXPECT_EQ(normalize_answer("\xE2\x88\x92"
                             "4"),
            "-4");
  EXPECT_EQ(normalize_answer("2 \\pi r"), "2\\pi r");
  EXPECT_EQ(normalize_answer("\\pi r^2"), "\\pi r^2");
  EXPECT_EQ(normalize_answer("5 cm^2"), "5");
  EXPECT_EQ(normalize_answer("2 1/2"), "2\\frac{1}{2}");
  EXPECT_EQ(normalize_answer("\\left\\{ 1, 2 \\right\\}"), "\\{1,2\\}");
  EXPECT_EQ(normalize_answer("\\$1,000.00"), "1000");
  EXPECT_EQ(normalize_answer("\\sqrt2"), "\\sqrt{2}");
  EXPECT_EQ(normalize_answer("  "), "");
}

TEST(MathVerifierTest, VerdictDetailIsTheAnswerAsWritten) {
  Verdict right = verify_math("so \\boxed{\\dfrac{1}{2}}", "0.5");
  EXPECT_EQ(right.reward, 1.0);
  EXPECT_EQ(right.detail, "\\dfrac{1}{2}");
  Verdict none = verify_math("I give up", "0.5");
  EXPECT_EQ(none.reward, 0.0);
  EXPECT_EQ(none.detail, "no answer found");
  Verdict empty = verify_math("\\boxed{}", "");
  EXPECT_EQ(empty.reward, 0.0);  // an empty answer never matches, not even an empty gold
  EXPECT_EQ(empty.detail, "");
}

}  // namespace
}  // namespace gopd::reward
