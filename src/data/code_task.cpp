// The "code" task: infer a small integer or list function from a few input/output examples
// and write it as a Python function f, e.g.
//   prompt: "Write a Python function f(x) such that f(1) = 3, f(2) = 5, f(4) = 9."
//   answer: "def f(x):\n    return 2 * x + 1"
// The record carries hidden tests on inputs the prompt does not show, in the call format of
// the code verifier: {"kind": "call", "entry_point": "f", "cases": [{"args": [..],
// "expected": ..}, ..]}.
//
// Families by difficulty: d1 linear; d2 quadratic, abs, modulo, floor division; d3
// piecewise, max/min clamp; d4 one list operation (sum, max, min, len, reverse, map, filter);
// d5 compositions of list operations. Every family pairs the Python text with a C++
// implementation that computes the expected values; the two must agree exactly, so the C++
// side implements Python's semantics where they differ from C++'s (`%` and `//` round toward
// negative infinity).
//
// Choices the design notes leave open:
// - Visible examples are sorted, so a function and a set of example inputs give exactly one
//   prompt text; they are redrawn (a bounded number of times) until they are informative:
//   not all outputs equal, and for piecewise and clamp functions, enough points on each
//   side of the break to pin both pieces down.
// - Hidden tests (5) use a wider input range than the visible examples (ints in [-20, 20]
//   vs [-9, 9]; lists up to length 6, possibly empty where the function allows it), so a
//   program that only memorises the examples fails them.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "task_internal.h"

namespace gopd::data::internal {
namespace {

using Value = nlohmann::json;  // an integer, or an array of integers
using IntList = std::vector<int64_t>;

constexpr int64_t kHiddenCases = 5;
constexpr int64_t kVisibleIntMax = 9;   // visible int inputs in [-9, 9]
constexpr int64_t kHiddenIntMax = 20;   // hidden int inputs in [-20, 20]
constexpr int64_t kListValueMax = 9;    // list elements in [-9, 9]
constexpr int64_t kVisibleListMin = 2;  // visible list lengths in [2, 5]
constexpr int64_t kVisibleListMax = 5;
constexpr int64_t kHiddenListMax = 6;      // hidden list lengths in [0 or 1, 6]
constexpr int64_t kMaxExampleDraws = 20;   // example sets tried per function
constexpr int64_t kMaxFunctionDraws = 50;  // functions tried per problem

// Python's floor division and modulo: the quotient rounds toward negative infinity and the
// remainder takes the divisor's sign (-7 // 2 == -4, -7 % 3 == 2); C++ truncates.
int64_t floor_div(int64_t a, int64_t b) {
  int64_t quotient = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --quotient;
  return quotient;
}

int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

// A family instance: the Python body of f and the C++ function it must agree with.
struct CodeFunction {
  std::vector<std::string> body;  // lines of f's body, relative indentation included
  std::function<Value(const Value&)> apply;
  bool list_input = false;
  bool needs_nonempty = false;  // max/min of an empty list raise in Python
  // Extra requirement on the visible inputs; the default only asks for varied outputs.
  std::function<bool(const std::vector<Value>&)> informative;
};

// "a * x" with the coefficient 1 and -1 written as Python programmers do.
std::string term(int64_t a, const std::string& var) {
  if (a == 1) return var;
  if (a == -1) return "-" + var;
  return std::to_string(a) + " * " + var;
}

// " + b", " - |b|" or "" for b == 0.
std::string offset(int64_t b) {
  if (b > 0) return " + " + std::to_string(b);
  if (b < 0) return " - " + std::to_string(-b);
  return "";
}

// "a * x + b" (a == 0 gives the constant alone).
std::string linear(int64_t a, int64_t b) {
  if (a == 0) return std::to_string(b);
  return term(a, "x") + offset(b);
}

int64_t draw_nonzero(core::Rng& rng, int64_t low, int64_t high) {
  int64_t value = 0;
  while (value == 0) value = rng.uniform_int(low, high);
  return value;
}

IntList as_list(const Value& value) { return value.get<IntList>(); }

CodeFunction int_function(std::string line, std::function<int64_t(int64_t)> f) {
  CodeFunction function;
  function.body = {std::move(line)};
  function.apply = [f](const Value& x) { return Value(f(x.get<int64_t>())); };
  return function;
}

CodeFunction list_function(std::string line, std::function<Value(const IntList&)> f,
                           bool needs_nonempty = false) {
  CodeFunction function;
  function.body = {std::move(line)};
  function.apply = [f](const Value& x) { return f(as_list(x)); };
  function.list_input = true;
  function.needs_nonempty = needs_nonempty;
  return function;
}

int64_t count_if_int(const std::vector<Value>& inputs, const std::function<bool(int64_t)>& p) {
  return std::count_if(inputs.begin(), inputs.end(),
                       [&](const Value& x) { return p(x.get<int64_t>()); });
}

// d1: a * x + b.
CodeFunction make_linear(core::Rng& rng) {
  const int64_t a = draw_nonzero(rng, -5, 9);
  const int64_t b = rng.uniform_int(-9, 9);
  return int_function("return " + linear(a, b), [a, b](int64_t x) { return a * x + b; });
}

// d2: quadratic, abs, modulo or floor division.
CodeFunction make_nonlinear(core::Rng& rng) {
  switch (rng.uniform_int(0, 3)) {
    case 0: {
      const int64_t a = draw_nonzero(rng, -2, 3);
      const int64_t b = rng.uniform_int(-9, 9);
      return int_function("return " + term(a, "x * x") + offset(b),
                          [a, b](int64_t x) { return a * x * x + b; });
    }
    case 1: {
      const int64_t c = rng.uniform_int(-9, 9);
      const int64_t b = rng.uniform_int(-5, 5);
      return int_function("return abs(" + linear(1, -c) + ")" + offset(b),
                          [c, b](int64_t x) { return (x - c < 0 ? c - x : x - c) + b; });
    }
    case 2: {
      const int64_t a = rng.uniform_int(1, 3);
      const int64_t c = rng.uniform_int(-5, 5);
      const int64_t m = rng.uniform_int(2, 9);
      const std::string inner = linear(a, c);
      const std::string text = inner == "x" ? "x" : "(" + inner + ")";
      return int_function("return " + text + " % " + std::to_string(m),
                          [a, c, m](int64_t x) { return floor_mod(a * x + c, m); });
    }
    default: {
      const int64_t m = rng.uniform_int(2, 5);
      const int64_t b = rng.uniform_int(-5, 5);
      return int_function("return x // " + std::to_string(m) + offset(b),
                          [m, b](int64_t x) { return floor_div(x, m) + b; });
    }
  }
}

// d3: piecewise linear around a threshold, or a linear function clamped by max/min.
CodeFunction make_branching(core::Rng& rng) {
  if (rng.uniform_int(0, 1) == 0) {
    const int64_t c = rng.uniform_int(-5, 5);
    int64_t a1 = 0, b1 = 0, a2 = 0, b2 = 0;
    while (a1 == a2 && b1 == b2) {
      a1 = rng.uniform_int(-3, 3);
      b1 = rng.uniform_int(-9, 9);
      a2 = rng.uniform_int(-3, 3);
      b2 = rng.uniform_int(-9, 9);
    }
    CodeFunction function =
        int_function("", [=](int64_t x) { return x > c ? a1 * x + b1 : a2 * x + b2; });
    function.body = {"if x > " + std::to_string(c) + ":", "    return " + linear(a1, b1),
                     "return " + linear(a2, b2)};
    // Two points on each side determine both lines.
    function.informative = [c](const std::vector<Value>& inputs) {
      const int64_t above = count_if_int(inputs, [c](int64_t x) { return x > c; });
      return above >= 2 && static_cast<int64_t>(inputs.size()) - above >= 2;
    };
    return function;
  }
  const bool use_max = rng.uniform_int(0, 1) == 0;
  const int64_t a = draw_nonzero(rng, -3, 3);
  const int64_t b = rng.uniform_int(-9, 9);
  const int64_t k = rng.uniform_int(-9, 9);
  const std::string name = use_max ? "max" : "min";
  CodeFunction function = int_function(
      "return " + name + "(" + linear(a, b) + ", " + std::to_string(k) + ")", [=](int64_t x) {
        const int64_t y = a * x + b;
        return use_max ? std::max(y, k) : std::min(y, k);
      });
  // Two points on the linear piece pin the line down; one clamped point shows the bound.
  function.informative = [=](const std::vector<Value>& inputs) {
    const int64_t free =
        count_if_int(inputs, [=](int64_t x) { return use_max ? a * x + b > k : a * x + b < k; });
    const int64_t clamped =
        count_if_int(inputs, [=](int64_t x) { return use_max ? a * x + b < k : a * x + b > k; });
    return free >= 2 && clamped >= 1;
  };
  return function;
}

// d4: one list operation.
CodeFunction make_list_operation(core::Rng& rng) {
  switch (rng.uniform_int(0, 9)) {
    case 0:
      return list_function("return sum(x)", [](const IntList& x) {
        int64_t total = 0;
        for (int64_t v : x) total += v;
        return Value(total);
      });
    case 1:
      return list_function(
          "return max(x)",
          [](const IntList& x) { return Value(*std::max_element(x.begin(), x.end())); }, true);
    case 2:
      return list_function(
          "return min(x)",
          [](const IntList& x) { return Value(*std::min_element(x.begin(), x.end())); }, true);
    case 3:
      return list_function("return len(x)",
                           [](const IntList& x) { return Value(static_cast<int64_t>(x.size())); });
    case 4:
      return list_function("return x[::-1]",
                           [](const IntList& x) { return Value(IntList(x.rbegin(), x.rend())); });
    case 5: {
      const int64_t k = rng.uniform_int(2, 5);
      return list_function("return [v * " + std::to_string(k) + " for v in x]",
                           [k](const IntList& x) {
                             IntList out;
                             for (int64_t v : x) out.push_back(v * k);
                             return Value(out);
                           });
    }
    case 6: {
      const int64_t k = draw_nonzero(rng, -5, 5);
      return list_function("return [v" + offset(k) + " for v in x]", [k](const IntList& x) {
        IntList out;
        for (int64_t v : x) out.push_back(v + k);
        return Value(out);
      });
    }
    case 7:
    case 8: {
      const int64_t parity = rng.uniform_int(0, 1);  // keep evens (0) or odds (1)
      return list_function("return [v for v in x if v % 2 == " + std::to_string(parity) + "]",
                           [parity](const IntList& x) {
                             IntList out;
                             for (int64_t v : x) {
                               if (floor_mod(v, 2) == parity) out.push_back(v);
                             }
                             return Value(out);
                           });
    }
    default: {
      const int64_t k = rng.uniform_int(-3, 3);
      return list_function("return [v for v in x if v > " + std::to_string(k) + "]",
                           [k](const IntList& x) {
                             IntList out;
                             for (int64_t v : x) {
                               if (v > k) out.push_back(v);
                             }
                             return Value(out);
                           });
    }
  }
}

// d5: compositions of list operations.
CodeFunction make_list_composition(core::Rng& rng) {
  switch (rng.uniform_int(0, 5)) {
    case 0: {
      const int64_t parity = rng.uniform_int(0, 1);
      return list_function(
          "return sum(v * v for v in x if v % 2 == " + std::to_string(parity) + ")",
          [parity](const IntList& x) {
            int64_t total = 0;
            for (int64_t v : x) {
              if (floor_mod(v, 2) == parity) total += v * v;
            }
            return Value(total);
          });
    }
    case 1: {
      const int64_t k = rng.uniform_int(-3, 3);
      return list_function("return sum(v for v in x if v > " + std::to_string(k) + ")",
                           [k](const IntList& x) {
                             int64_t total = 0;
                             for (int64_t v : x) {
                               if (v > k) total += v;
                             }
                             return Value(total);
                           });
    }
    case 2:
      return list_function(
          "return max(x) - min(x)",
          [](const IntList& x) {
            return Value(*std::max_element(x.begin(), x.end()) -
                         *std::min_element(x.begin(), x.end()));
          },
          true);
    case 3: {
      const int64_t m = rng.uniform_int(2, 4);
      return list_function("return len([v for v in x if v % " + std::to_string(m) + " == 0])",
                           [m](const IntList& x) {
                             int64_t count = 0;
                             for (int64_t v : x) count += floor_mod(v, m) == 0 ? 1 : 0;
                             return Value(count);
                           });
    }
    case 4: {
      const int64_t k = rng.uniform_int(2, 3);
      const int64_t c = rng.uniform_int(-2, 2);
      return list_function(
          "return [v * " + std::to_string(k) + " for v in x if v > " + std::to_string(c) + "]",
          [k, c](const IntList& x) {
            IntList out;
            for (int64_t v : x) {
              if (v > c) out.push_back(v * k);
            }
            return Value(out);
          });
    }
    default:
      return list_function("return sorted(x)[::-1]", [](const IntList& x) {
        IntList out = x;
        std::sort(out.begin(), out.end());
        std::reverse(out.begin(), out.end());
        return Value(out);
      });
  }
}

CodeFunction make_function(int64_t difficulty, core::Rng& rng) {
  switch (difficulty) {
    case 1:
      return make_linear(rng);
    case 2:
      return make_nonlinear(rng);
    case 3:
      return make_branching(rng);
    case 4:
      return make_list_operation(rng);
    default:
      return make_list_composition(rng);
  }
}

int64_t visible_count(int64_t difficulty) {
  // Enough points to determine the family's parameters: 3 for a line, 5 for two pieces.
  static const int64_t counts[] = {3, 4, 5, 3, 4};
  return counts[difficulty - 1];
}

Value draw_input(const CodeFunction& function, bool hidden, core::Rng& rng) {
  if (!function.list_input) {
    const int64_t bound = hidden ? kHiddenIntMax : kVisibleIntMax;
    return Value(rng.uniform_int(-bound, bound));
  }
  const int64_t min_length = hidden ? (function.needs_nonempty ? 1 : 0) : kVisibleListMin;
  const int64_t max_length = hidden ? kHiddenListMax : kVisibleListMax;
  IntList list(rng.uniform_int(min_length, max_length));
  for (int64_t& v : list) v = rng.uniform_int(-kListValueMax, kListValueMax);
  return Value(list);
}

bool contains(const std::vector<Value>& values, const Value& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// Sorted so that a set of inputs has one textual form (ints numerically, lists
// lexicographically).
void sort_inputs(std::vector<Value>& inputs, bool list_input) {
  std::sort(inputs.begin(), inputs.end(), [list_input](const Value& a, const Value& b) {
    if (list_input) return as_list(a) < as_list(b);
    return a.get<int64_t>() < b.get<int64_t>();
  });
}

// `count` distinct inputs, none of them in `avoid`.
std::vector<Value> draw_inputs(const CodeFunction& function, bool hidden, int64_t count,
                               const std::vector<Value>& avoid, core::Rng& rng) {
  std::vector<Value> inputs;
  while (static_cast<int64_t>(inputs.size()) < count) {
    Value x = draw_input(function, hidden, rng);
    if (!contains(inputs, x) && !contains(avoid, x)) inputs.push_back(std::move(x));
  }
  sort_inputs(inputs, function.list_input);
  return inputs;
}

bool outputs_vary(const CodeFunction& function, const std::vector<Value>& inputs) {
  const Value first = function.apply(inputs.front());
  for (const Value& x : inputs) {
    if (function.apply(x) != first) return true;
  }
  return false;
}

// Python's repr of an int or a list of ints.
std::string python_repr(const Value& value) {
  if (!value.is_array()) return std::to_string(value.get<int64_t>());
  std::string text = "[";
  for (size_t i = 0; i < value.size(); ++i) {
    text += (i == 0 ? "" : ", ") + std::to_string(value[i].get<int64_t>());
  }
  return text + "]";
}

}  // namespace

Problem make_code_problem(int64_t difficulty, core::Rng& rng) {
  // Some parameter draws cannot show their shape on small inputs (max(x - 9, 9) is 9 on all
  // of [-9, 9]); those functions are redrawn.
  CodeFunction function;
  std::vector<Value> visible;
  for (int64_t function_draw = 0; function_draw < kMaxFunctionDraws; ++function_draw) {
    function = make_function(difficulty, rng);
    bool informative = false;
    for (int64_t draw = 0; draw < kMaxExampleDraws && !informative; ++draw) {
      visible = draw_inputs(function, false, visible_count(difficulty), {}, rng);
      informative = (!function.informative || function.informative(visible)) &&
                    outputs_vary(function, visible);
    }
    if (informative) break;
  }
  const std::vector<Value> hidden = draw_inputs(function, true, kHiddenCases, visible, rng);

  Problem problem;
  // Ints read well as "f(1) = 3, f(2) = 5"; lists already contain commas, so use ";".
  const std::string separator = function.list_input ? "; " : ", ";
  problem.prompt = "Write a Python function f(x) such that ";
  for (size_t i = 0; i < visible.size(); ++i) {
    problem.prompt += (i == 0 ? "" : separator) + "f(" + python_repr(visible[i]) +
                      ") = " + python_repr(function.apply(visible[i]));
  }
  problem.prompt += ".";

  problem.answer = "def f(x):";
  for (const std::string& line : function.body) problem.answer += "\n    " + line;
  problem.solution = "```python\n" + problem.answer + "\n```";

  Value cases = Value::array();
  for (const Value& x : hidden) {
    Value args = Value::array();
    args.push_back(x);  // f takes one positional argument
    Value test_case = Value::object();
    test_case["args"] = std::move(args);
    test_case["expected"] = function.apply(x);
    cases.push_back(std::move(test_case));
  }
  problem.tests = {{"kind", "call"}, {"entry_point", "f"}, {"cases", cases}};
  return problem;
}

}  // namespace gopd::data::internal
