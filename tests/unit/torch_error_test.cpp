// What `main` prints for an exception from LibTorch (core::describe_torch_error): out of memory
// becomes what to lower; any other c10::Error is an internal failure on one line, without the
// backtrace LibTorch appends; other exceptions are not its business.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>

#include "gopd/core/runtime.h"

namespace {

TEST(TorchError, OutOfMemorySaysWhatToLower) {
  try {
    TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried to allocate 2.00 GiB");
  } catch (const std::exception& error) {
    const std::string message = gopd::core::describe_torch_error(error);
    EXPECT_EQ(message.rfind("out of memory: CUDA out of memory.", 0), 0u) << message;
    EXPECT_NE(message.find("optim.micro_batch_size"), std::string::npos) << message;
    EXPECT_NE(message.find("train.activation_checkpointing"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return;
  }
  FAIL() << "TORCH_CHECK_WITH did not throw";
}

TEST(TorchError, OtherErrorsAreInternalFailuresOnOneLine) {
  try {
    (void)torch::ones({2, 3}).matmul(torch::ones({2, 3}));
  } catch (const std::exception& error) {
    const std::string message = gopd::core::describe_torch_error(error);
    EXPECT_EQ(message.rfind("internal failure in LibTorch: ", 0), 0u) << message;
    EXPECT_NE(message.find("cannot be multiplied"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.find("Exception raised from"), std::string::npos) << message;
    return;
  }
  FAIL() << "a shape mismatch did not throw";
}

TEST(TorchError, OtherExceptionsAreNotDescribed) {
  EXPECT_EQ(gopd::core::describe_torch_error(std::runtime_error("boom")), "");
}

}  // namespace
