// The one exception type of gopd. Every failure that reaches `main` carries the process
// exit code of DESIGN.md's CLI contract: 1 for a runtime failure, 2 for bad usage, config
// or input. Messages name the file, key path or line, what was expected and what was found.
#pragma once

#include <stdexcept>
#include <string>

namespace gopd::core {

enum class ExitCode : int {
  kSuccess = 0,
  kRuntimeFailure = 1,
  kBadInput = 2,  // bad usage, config, dataset, checkpoint, tokenizer file
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }
  int exit_code() const { return static_cast<int>(code_); }

 private:
  ExitCode code_;
};

// Bad input from the user: exit code 2.
[[noreturn]] inline void throw_bad_input(const std::string& message) {
  throw Error(ExitCode::kBadInput, message);
}

// Something failed at run time although the input was acceptable: exit code 1.
[[noreturn]] inline void throw_runtime_failure(const std::string& message) {
  throw Error(ExitCode::kRuntimeFailure, message);
}

}  // namespace gopd::core
