// The LibTorch checkpoint bridge: save -> load is bit-exact for F32/BF16/F16 (NaN payloads,
// -0, non-contiguous and zero-element tensors included), names survive, sharded directories
// round-trip, and dtypes gopd does not load are refused with file and tensor named.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <limits>

#include "gopd/core/error.h"
#include "gopd/model/checkpoint.h"

namespace gopd::model {
namespace {

class CheckpointTorchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = (std::filesystem::temp_directory_path() /
                  ("gopd_checkpoint_" + std::to_string(::getpid()) + "_" +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                     .string();
    std::filesystem::remove_all(directory_);
    torch::manual_seed(1234);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  std::string directory_;
};

// Awkward shapes and every loadable dtype, with values a lossy path would change.
std::vector<std::pair<std::string, torch::Tensor>> sample_tensors() {
  torch::Tensor weight = torch::randn({4, 47});  // (4, 47) fp32
  weight.index_put_({0, 0}, std::numeric_limits<float>::quiet_NaN());
  weight.index_put_({0, 1}, -0.0f);
  weight.index_put_({0, 2}, 1e-42f);                    // denormal
  torch::Tensor transposed = torch::randn({4, 5}).t();  // (5, 4) fp32, non-contiguous
  torch::Tensor parameter = torch::randn({3}).requires_grad_();
  return {
      {"model.layers.0.mlp.up_proj.weight", weight},
      {"model.embed_tokens.weight", torch::randn({3, 5, 7}).to(torch::kBFloat16)},
      {"model.norm.weight", torch::randn({31}).to(torch::kHalf)},
      {"transposed", transposed},
      {"scalar", torch::full({}, 2.5f)},
      {"empty", torch::zeros({0, 3}, torch::kHalf)},
      {"parameter", parameter},
  };
}

void expect_bit_exact(const torch::Tensor& expected, const torch::Tensor& actual,
                      const std::string& name) {
  const torch::Tensor want = expected.detach().contiguous();
  ASSERT_TRUE(actual.defined()) << name;
  EXPECT_EQ(actual.scalar_type(), want.scalar_type()) << name;
  EXPECT_EQ(actual.sizes(), want.sizes()) << name;
  EXPECT_EQ(actual.device(), torch::Device(torch::kCPU)) << name;
  ASSERT_EQ(actual.nbytes(), want.nbytes()) << name;
  if (want.nbytes() > 0) {
    EXPECT_EQ(std::memcmp(actual.data_ptr(), want.data_ptr(), want.nbytes()), 0) << name;
  }
}

TEST_F(CheckpointTorchTest, RoundTripIsBitExact) {
  const auto tensors = sample_tensors();
  save_checkpoint_tensors(directory_, tensors);
  EXPECT_TRUE(std::filesystem::exists(directory_ + "/model.safetensors"));
  auto loaded = load_checkpoint_tensors(directory_);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) expect_bit_exact(tensor, loaded.at(name), name);

  // The loaded tensors own their memory: the files can go.
  std::filesystem::remove_all(directory_);
  EXPECT_EQ(loaded.at("scalar").item<float>(), 2.5f);
  EXPECT_FALSE(loaded.at("parameter").requires_grad());
}

TEST_F(CheckpointTorchTest, ShardedRoundTrip) {
  const auto tensors = sample_tensors();
  // 752 | 210 + 62 | 80 + 4 + 0 + 12 bytes with a 300-byte limit: three shards.
  save_checkpoint_tensors(directory_, tensors, 300);
  EXPECT_FALSE(std::filesystem::exists(directory_ + "/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(directory_ + "/model.safetensors.index.json"));
  EXPECT_TRUE(std::filesystem::exists(directory_ + "/model-00003-of-00003.safetensors"));
  const auto loaded = load_checkpoint_tensors(directory_);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) expect_bit_exact(tensor, loaded.at(name), name);
  const CheckpointFiles files(directory_);
  EXPECT_EQ(files.file_path("model.norm.weight"), directory_ + "/model-00002-of-00003.safetensors");
}

TEST_F(CheckpointTorchTest, RefusesDTypesItDoesNotLoad) {
  try {
    save_checkpoint_tensors(directory_, {{"ids", torch::arange(4)}});
    FAIL() << "no error";
  } catch (const core::Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    EXPECT_EQ(std::string(error.what()),
              directory_ +
                  ": tensor \"ids\": dtype Long cannot be saved; gopd saves only F32, BF16 and F16 "
                  "weights");
  }

  const std::vector<int64_t> ids = {1, 2, 3};
  const std::vector<float> weight = {1.0f};
  write_checkpoint(directory_,
                   {{"w", DType::kF32, {1}, weight.data()}, {"ids", DType::kI64, {3}, ids.data()}});
  try {
    load_checkpoint_tensors(directory_);
    FAIL() << "no error";
  } catch (const core::Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    EXPECT_EQ(std::string(error.what()),
              directory_ +
                  "/model.safetensors: tensor \"ids\" has dtype I64; gopd loads only F32, BF16 "
                  "and F16 weights");
  }
}

TEST_F(CheckpointTorchTest, DuplicateNamesAreRefused) {
  try {
    save_checkpoint_tensors(directory_, {{"w", torch::ones({2})}, {"w", torch::ones({2})}});
    FAIL() << "no error";
  } catch (const core::Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    EXPECT_EQ(std::string(error.what()), directory_ + ": tensor \"w\": listed twice");
  }
  EXPECT_FALSE(std::filesystem::exists(directory_ + "/model.safetensors"));
}

}  // namespace
}  // namespace gopd::model
