// The decoder-only transformer of the llama / qwen2 / qwen3 families, with Hugging Face's
// parameter names (`model.layers.0.self_attn.q_proj.weight`, …) so checkpoints map one to
// one. Single-device and readable; parallelism is applied from outside.
//
// Semantics follow transformers' eager implementation: RMSNorm accumulates in fp32 and
// casts back before the weight; rotary embeddings in the rotate-half convention with cos/sin
// computed in fp32; attention scores in the model dtype, softmax in fp32; qwen3 applies a
// per-head RMSNorm to q and k before the rotation. Masked scores take the dtype's lowest
// finite value (as transformers does) so a fully masked padding row stays finite.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "gopd/model/model_config.h"

namespace gopd::model {

// Keys and values of every layer for incremental decoding. Rows share one length: prompts
// are left-padded, and `key_mask` in forward_cached marks which cached positions are real.
struct KVCache {
  std::vector<torch::Tensor> keys;    // per layer (B, Hkv, capacity, D), rotated
  std::vector<torch::Tensor> values;  // per layer (B, Hkv, capacity, D)
  int64_t length = 0;                 // positions filled so far

  static KVCache allocate(const ModelConfig& config, int64_t batch, int64_t capacity,
                          torch::Dtype dtype, torch::Device device);
  int64_t capacity() const { return keys.empty() ? 0 : keys[0].size(2); }
  int64_t batch() const { return keys.empty() ? 0 : keys[0].size(0); }
  // Keeps only the rows `rows` (int64 (B')), e.g. when finished sequences leave the batch.
  void select_rows(const torch::Tensor& rows);
};

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t size, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // (..., size)
  double eps() const { return eps_; }
  torch::Tensor weight;                           // (size)

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// How attention is computed. explicit_softmax: scores, fp32 softmax and the weighted sum as
// plain tensors (transformers' eager path; the reference). sdpa: at::scaled_dot_product_attention,
// which picks the fused kernels (flash / memory-efficient on a GPU, the flash CPU kernel) and
// never holds the (T × S) probabilities per head. Equal on every real position; padding query
// rows (which no real position reads) differ: eager spreads them uniformly, sdpa lets them see
// themselves.
enum class AttentionKernel { explicit_softmax, sdpa };
AttentionKernel parse_attention_kernel(const std::string& name);  // "explicit" | "sdpa"

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelConfig& config);
  AttentionKernel kernel = AttentionKernel::explicit_softmax;
  // x (B, T, H); cos/sin (B, T, D) fp32; allowed (B, 1, 1, T, S) bool, S = past + T: which
  // keys each query may attend to. When `cache` is given, the new keys/values are written at
  // [past, past + T) of layer `layer`'s cache.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& allowed, KVCache* cache, int64_t layer);
  // The fused decode step (one token per row, CPU fp32, no gradients; kernels/decode_ops.h):
  // x (B, 1, H); cos/sin (B, D); key_mask (B, past + 1) bool.
  torch::Tensor forward_decode(const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, const torch::Tensor& key_mask,
                               KVCache& cache, int64_t layer);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // qwen3 only

 private:
  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

class MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, H) → (B, T, H)
  torch::Tensor forward_decode(const torch::Tensor& x);  // the same with the fused SiLU·up
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& allowed, KVCache* cache, int64_t layer);
  torch::Tensor forward_decode(const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, const torch::Tensor& key_mask,
                               KVCache& cache, int64_t layer);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

// `model.*` of a Hugging Face causal LM: embeddings, layers, final norm.
class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const ModelConfig& config);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Decoder);

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(ModelConfig config);

  // Full sequences (training, scoring). input_ids (B, T) int64; attention_mask (B, T), 1 for
  // tokens and 0 for padding (undefined = all tokens); position_ids (B, T) (undefined =
  // cumsum(mask) - 1, which handles left and right padding). Returns logits (B, T, V) in the
  // model dtype.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& position_ids = {});
  // The same up to the final norm: (B, T, H). Fused losses apply lm_head themselves.
  torch::Tensor hidden_states(const torch::Tensor& input_ids,
                              const torch::Tensor& attention_mask = {},
                              const torch::Tensor& position_ids = {});

  // Incremental decoding: appends input_ids (B, T_new) at position_ids (B, T_new) to `cache`
  // and returns their logits (B, T_new, V). key_mask (B, cache.length + T_new) bool marks
  // real (non-padding) positions among all cached keys including the new ones.
  torch::Tensor forward_cached(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                               const torch::Tensor& key_mask, KVCache& cache);

  // (V, H): lm_head.weight, or the embedding when tied.
  torch::Tensor output_weight();

  // Activation checkpointing: with gradients on, each decoder layer keeps only its input in
  // forward and runs again in backward (forward/hidden_states only, never the KV cache).
  void set_activation_checkpointing(bool on) { activation_checkpointing_ = on; }
  // The attention of every layer (training, scoring, prefill and decode alike).
  void set_attention(AttentionKernel kernel);
  AttentionKernel attention() const { return attention_; }
  // KV-cache steps of one token per row without gradients, on the CPU in fp32, go through the
  // fused decode kernels (kernels/decode_ops.h) unless this is off; the plain path is the
  // reference (`kernels.impl: reference` turns it off). Steps taken on the fused path so far:
  void set_fused_decode(bool on) { fused_decode_ = on; }
  bool fused_decode() const { return fused_decode_; }
  int64_t fused_decode_steps() const { return fused_decode_steps_; }
  bool activation_checkpointing() const { return activation_checkpointing_; }
  const ModelConfig& config() const { return config_; }

  Decoder model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // absent when tie_word_embeddings

 private:
  torch::Tensor run_layers(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                           const torch::Tensor& key_mask, KVCache* cache);

  ModelConfig config_;
  bool activation_checkpointing_ = false;
  bool fused_decode_ = true;
  int64_t fused_decode_steps_ = 0;
  AttentionKernel attention_ = AttentionKernel::explicit_softmax;
  torch::Tensor inv_freq_;  // (D/2) fp32, after rope scaling; kept fp32 whatever the model dtype
};
TORCH_MODULE(Transformer);

// Inverse rotary frequencies (D/2) fp32, with llama3 scaling when configured.
torch::Tensor rope_inverse_frequencies(const ModelConfig& config);

// Hugging Face's initialisation: N(0, initializer_range) for linear and embedding weights,
// zero biases, unit norm weights; seeded through LibTorch's generator.
void initialize_weights(Transformer& model);

}  // namespace gopd::model
