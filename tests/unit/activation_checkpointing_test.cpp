// Activation checkpointing (each decoder layer recomputed in backward) gives the plain
// backward's loss and gradients, for every parameter, on a ragged left-padded batch of every
// model family; and it is off where no gradient is taken (no-grad forward, KV-cache decoding),
// where it would only cost time.
#include <gtest/gtest.h>

#include <set>

#include "gopd/model/transformer.h"

namespace {

using namespace gopd;

struct Result {
  torch::Tensor loss;
  std::vector<torch::Tensor> grads;
  int64_t recomputed_layers = 0;  // RecomputedLayer nodes in the loss's graph
};

// Nodes of the autograd graph of `root` whose name contains `name`.
int64_t count_nodes(const std::shared_ptr<torch::autograd::Node>& root, const std::string& name) {
  std::vector<std::shared_ptr<torch::autograd::Node>> stack = {root};
  std::set<torch::autograd::Node*> seen;
  int64_t count = 0;
  while (!stack.empty()) {
    const std::shared_ptr<torch::autograd::Node> node = stack.back();
    stack.pop_back();
    if (!node || !seen.insert(node.get()).second) continue;
    if (node->name().find(name) != std::string::npos) ++count;
    for (const torch::autograd::Edge& edge : node->next_edges()) stack.push_back(edge.function);
  }
  return count;
}

Result loss_and_grads(model::Transformer& model, bool checkpointing) {
  model->set_activation_checkpointing(checkpointing);
  model->zero_grad();
  const torch::Tensor ids =
      torch::tensor({{0, 0, 5, 9, 3, 7}, {4, 8, 1, 2, 6, 3}, {0, 0, 0, 0, 2, 11}});  // (3, 6)
  const torch::Tensor mask = ids.ne(0).to(torch::kLong);                             // (3, 6)
  const torch::Tensor logits = model->forward(ids, mask);                            // (3, 6, V)
  const torch::Tensor weights = torch::linspace(-1.0, 1.0, logits.numel()).view(logits.sizes());
  const torch::Tensor loss = (logits.log_softmax(-1) * weights * mask.unsqueeze(-1)).sum();
  const int64_t recomputed = count_nodes(loss.grad_fn(), "RecomputedLayer");
  loss.backward();
  Result result{loss.detach(), {}, recomputed};
  for (const torch::Tensor& parameter : model->parameters())
    result.grads.push_back(parameter.grad().clone());
  return result;
}

TEST(ActivationCheckpointing, GradientsEqualThePlainBackward) {
  for (const std::string family : {"qwen3", "llama", "qwen2"}) {
    model::ModelConfig config = model::model_config_for(family, 13, 16, 3, 4, 2, 24);
    torch::manual_seed(3);
    model::Transformer model(config);
    model::initialize_weights(model);
    const Result plain = loss_and_grads(model, false);
    const Result recomputed = loss_and_grads(model, true);
    EXPECT_EQ(plain.recomputed_layers, 0) << family;
    EXPECT_EQ(recomputed.recomputed_layers, 3) << family;  // every layer went through the recompute
    EXPECT_TRUE(torch::allclose(plain.loss, recomputed.loss, 1e-6, 1e-6)) << family;
    ASSERT_EQ(plain.grads.size(), recomputed.grads.size());
    for (size_t i = 0; i < plain.grads.size(); ++i) {
      ASSERT_GT(plain.grads[i].abs().sum().item<double>(), 0.0) << family << " parameter " << i;
      EXPECT_TRUE(torch::allclose(plain.grads[i], recomputed.grads[i], 1e-5, 1e-7))
          << family << " parameter " << i << ": max difference "
          << (plain.grads[i] - recomputed.grads[i]).abs().max().item<double>();
    }
  }
}

TEST(ActivationCheckpointing, NoGradForwardIsUnchanged) {
  model::ModelConfig config = model::model_config_for("qwen3", 13, 16, 2, 4, 2, 24);
  torch::manual_seed(4);
  model::Transformer model(config);
  model::initialize_weights(model);
  const torch::Tensor ids = torch::tensor({{1, 5, 9, 3}});  // (1, 4)
  torch::NoGradGuard no_grad;
  const torch::Tensor plain = model->forward(ids);
  model->set_activation_checkpointing(true);
  EXPECT_TRUE(torch::equal(plain, model->forward(ids)));
}

}  // namespace
