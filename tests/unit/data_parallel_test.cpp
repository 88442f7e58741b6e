// The data-parallel pieces that run in one process: the world read from torchrun's and SLURM's
// variables (a batch script is one process; bad values are exit 2 naming the variable), and
// ZeRO-1's AdamW against torch::optim::AdamW on awkward shapes (a 3×5 matrix, a 7-vector, a
// scalar-sized tensor; weight decay, global-norm clipping): the same weights after several
// steps, the same state exported in the whole-model layout, and a run continued from an imported
// state equal to one never interrupted. The two-rank behaviour is tested end to end
// (tests/e2e/dist_cli_test.cpp).
#include <gtest/gtest.h>

#include "gopd/core/error.h"
#include "gopd/dist/data_parallel.h"
#include "gopd/dist/world.h"

namespace {

using namespace gopd;

TEST(World, ReadsTorchrunAndSrunStepVariables) {
  const dist::World none = dist::world_from({});
  EXPECT_FALSE(none.distributed());
  EXPECT_EQ(none.rank, 0);

  const dist::World torchrun = dist::world_from({{"RANK", "5"},
                                                 {"WORLD_SIZE", "8"},
                                                 {"LOCAL_RANK", "1"},
                                                 {"LOCAL_WORLD_SIZE", "4"},
                                                 {"MASTER_ADDR", "node0"},
                                                 {"MASTER_PORT", "29501"}});
  EXPECT_TRUE(torchrun.distributed());
  EXPECT_EQ(torchrun.rank, 5);
  EXPECT_EQ(torchrun.world_size, 8);
  EXPECT_EQ(torchrun.local_rank, 1);
  EXPECT_EQ(torchrun.local_world_size, 4);
  EXPECT_EQ(torchrun.master_addr, "node0");
  EXPECT_EQ(torchrun.master_port, 29501);
  // Without LOCAL_RANK: the rank's place on its node.
  EXPECT_EQ(dist::world_from({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_WORLD_SIZE", "4"}}).local_rank, 1);

  const dist::World srun = dist::world_from({{"SLURM_PROCID", "3"},
                                             {"SLURM_STEP_NUM_TASKS", "4"},
                                             {"SLURM_NTASKS", "4"},
                                             {"SLURM_LOCALID", "1"},
                                             {"SLURM_STEP_TASKS_PER_NODE", "2(x2)"},
                                             {"SLURM_JOB_NODELIST", "gpu[07-08]"}});
  EXPECT_EQ(srun.rank, 3);
  EXPECT_EQ(srun.world_size, 4);
  EXPECT_EQ(srun.local_rank, 1);
  EXPECT_EQ(srun.local_world_size, 2);
  EXPECT_EQ(srun.master_addr, "gpu07");
  // The batch script of a 4-task job (no srun step variables) is one process.
  EXPECT_FALSE(dist::world_from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}}).distributed());
  EXPECT_EQ(dist::first_slurm_host("a1,b2"), "a1");
  EXPECT_EQ(dist::first_slurm_host("node[3,5-9]"), "node3");
}

TEST(World, BadValuesAreExitTwoNamingTheVariable) {
  const auto code_and_message = [](const std::map<std::string, std::string>& environment) {
    try {
      dist::world_from(environment);
    } catch (const core::Error& error) {
      return std::make_pair(error.exit_code(), std::string(error.what()));
    }
    return std::make_pair(0, std::string());
  };
  auto [code, message] = code_and_message({{"RANK", "x"}, {"WORLD_SIZE", "2"}});
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("RANK"), std::string::npos) << message;
  std::tie(code, message) = code_and_message({{"RANK", "2"}, {"WORLD_SIZE", "2"}});
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("world size"), std::string::npos) << message;
  std::tie(code, message) = code_and_message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}});
  EXPECT_EQ(code, 2);
  EXPECT_NE(message.find("MASTER_PORT"), std::string::npos) << message;
}

std::vector<torch::Tensor> parameters(int seed) {
  torch::manual_seed(seed);
  return {torch::randn({3, 5}).requires_grad_(), torch::randn({7}).requires_grad_(),
          torch::randn({1}).requires_grad_()};
}

void set_gradients(std::vector<torch::Tensor>& params, int step) {
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].mutable_grad() = torch::sin(torch::arange(params[i].numel(), torch::kFloat) *
                                              double(step + 1) + double(i))
                                   .view_as(params[i]) * (i == 0 ? 5.0 : 0.3);
  }
}

torch::optim::AdamWOptions adamw() { return torch::optim::AdamWOptions(0.05).weight_decay(0.1); }

// The plain AdamW step with clip_grad_norm_ at 1.0, as the Updater makes it.
void plain_step(std::vector<torch::Tensor>& params, torch::optim::AdamW& optimizer, int step) {
  set_gradients(params, step);
  torch::nn::utils::clip_grad_norm_(params, 1.0);
  optimizer.step();
}

void sharded_step(std::vector<torch::Tensor>& params, dist::ShardedAdamW& optimizer, int step) {
  set_gradients(params, step);
  const double norm = optimizer.reduce_gradients();
  EXPECT_FALSE(params[0].grad().defined());  // handed over to the slice
  const double factor = 1.0 / (norm + 1e-6);
  if (factor < 1) optimizer.scale_gradient(factor);
  optimizer.step(0.05);
}

TEST(ShardedAdamW, MatchesAdamWAndItsExportedStateContinuesTheRun) {
  std::vector<torch::Tensor> plain = parameters(3);
  std::vector<torch::Tensor> sharded = parameters(3);
  torch::optim::AdamW reference(plain, adamw());
  dist::ShardedAdamW zero(sharded, adamw(), std::make_shared<const dist::Comm>());
  for (int step = 0; step < 4; ++step) {
    plain_step(plain, reference, step);
    sharded_step(sharded, zero, step);
  }
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(torch::allclose(plain[i], sharded[i], 1e-6, 1e-7)) << i;
    EXPECT_FALSE(torch::equal(plain[i], parameters(3)[i])) << "parameter " << i << " never moved";
  }
  // The export is AdamW's own state: same step count, same moments, per parameter.
  torch::optim::AdamW exported(sharded, adamw());
  zero.export_state(exported);
  for (size_t i = 0; i < plain.size(); ++i) {
    const auto& want = static_cast<const torch::optim::AdamWParamState&>(
        *reference.state().at(plain[i].unsafeGetTensorImpl()));
    const auto& got = static_cast<const torch::optim::AdamWParamState&>(
        *exported.state().at(sharded[i].unsafeGetTensorImpl()));
    EXPECT_EQ(got.step(), want.step());
    EXPECT_TRUE(torch::allclose(got.exp_avg(), want.exp_avg(), 1e-6, 1e-8)) << i;
    EXPECT_TRUE(torch::allclose(got.exp_avg_sq(), want.exp_avg_sq(), 1e-6, 1e-10)) << i;
  }
  // A fresh ZeRO-1 optimizer from that state continues as the uninterrupted one.
  dist::ShardedAdamW resumed(sharded, adamw(), std::make_shared<const dist::Comm>());
  resumed.import_state(exported);
  std::vector<torch::Tensor> continued = sharded;  // the same tensors, now under `resumed`
  for (int step = 4; step < 6; ++step) {
    sharded_step(continued, resumed, step);
    plain_step(plain, reference, step);
  }
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_TRUE(torch::allclose(plain[i], continued[i], 1e-6, 1e-7)) << i;
  EXPECT_EQ(zero.state_bytes(), 2 * (15 + 7 + 1) * 4);
}

}  // namespace
