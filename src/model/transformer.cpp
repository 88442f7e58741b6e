// Implements the llama / qwen2 / qwen3 decoder (see transformer.h for the semantics).
#include "gopd/model/transformer.h"

#include "gopd/kernels/decode_ops.h"
#include "gopd/model/autocast.h"

#include <cmath>
#include <limits>

namespace gopd::model {
namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {  // (..., D)
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x (B, heads, T, D); cos/sin (B, T, D) fp32. Rotation in fp32, result in x's dtype — the
// same as transformers, where cos/sin are cast to the activation dtype first; for fp32 they
// are identical and for bf16 this is the more precise of the two.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin) {
  const torch::Tensor c = cos.unsqueeze(1).to(x.scalar_type());
  const torch::Tensor s = sin.unsqueeze(1).to(x.scalar_type());
  return x * c + rotate_half(x) * s;
}

// Masked scores take the dtype's lowest finite value, as in transformers: a row with every
// key masked (a left-padding query) then softmaxes to a finite uniform row instead of NaN.
double lowest_finite(torch::ScalarType type) {
  switch (type) {
    case torch::kBFloat16:
      return -3.3895313892515355e38;
    case torch::kHalf:
      return -65504.0;
    case torch::kDouble:
      return -std::numeric_limits<double>::max();
    default:
      return -std::numeric_limits<float>::max();
  }
}

torch::nn::Linear make_linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

}  // namespace

KVCache KVCache::allocate(const ModelConfig& config, int64_t batch, int64_t capacity,
                          torch::Dtype dtype, torch::Device device) {
  KVCache cache;
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    cache.keys.push_back(
        torch::zeros({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
    cache.values.push_back(
        torch::zeros({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
  }
  return cache;
}

void KVCache::select_rows(const torch::Tensor& rows) {
  for (auto& key : keys) key = key.index_select(0, rows);
  for (auto& value : values) value = value.index_select(0, rows);
}

RMSNormImpl::RMSNormImpl(int64_t size, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({size}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  const torch::Tensor x32 = x.to(torch::kFloat);
  const torch::Tensor normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * normed.to(x.scalar_type());
}

AttentionImpl::AttentionImpl(const ModelConfig& config)
    : heads_(config.num_attention_heads),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim) {
  const int64_t hidden = config.hidden_size;
  q_proj = register_module("q_proj", make_linear(hidden, heads_ * head_dim_, config.qkv_bias()));
  k_proj = register_module("k_proj", make_linear(hidden, kv_heads_ * head_dim_, config.qkv_bias()));
  v_proj = register_module("v_proj", make_linear(hidden, kv_heads_ * head_dim_, config.qkv_bias()));
  o_proj = register_module("o_proj", make_linear(heads_ * head_dim_, hidden, config.o_bias()));
  if (config.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(head_dim_, config.rms_norm_eps));
    k_norm = register_module("k_norm", RMSNorm(head_dim_, config.rms_norm_eps));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin, const torch::Tensor& allowed,
                                     KVCache* cache, int64_t layer) {
  const int64_t batch = x.size(0);
  const int64_t steps = x.size(1);
  const int64_t groups = heads_ / kv_heads_;
  torch::Tensor q = q_proj(x).view({batch, steps, heads_, head_dim_});     // (B, T, Hq, D)
  torch::Tensor k = k_proj(x).view({batch, steps, kv_heads_, head_dim_});  // (B, T, Hkv, D)
  torch::Tensor v = v_proj(x).view({batch, steps, kv_heads_, head_dim_});  // (B, T, Hkv, D)
  if (q_norm) {
    q = q_norm(q);
    k = k_norm(k);
  }
  q = apply_rotary(q.transpose(1, 2), cos, sin);  // (B, Hq, T, D)
  k = apply_rotary(k.transpose(1, 2), cos, sin);  // (B, Hkv, T, D)
  v = v.transpose(1, 2);                          // (B, Hkv, T, D)

  if (cache != nullptr) {
    const int64_t past = cache->length;
    cache->keys[layer].narrow(2, past, steps).copy_(k);
    cache->values[layer].narrow(2, past, steps).copy_(v);
    k = cache->keys[layer].narrow(2, 0, past + steps);  // (B, Hkv, S, D), a strided view
    v = cache->values[layer].narrow(2, 0, past + steps);
  }
  const int64_t keys = k.size(2);

  if (kernel == AttentionKernel::sdpa) {
    // Key/value heads repeated to the query heads: the memory-efficient GPU kernel, the one
    // that takes an arbitrary mask, has no grouped-query mode. `allowed` (B, 1, 1, T, S) lets
    // each padding query see at least itself (run_layers), so no row is fully masked.
    const torch::Tensor k_full = groups > 1 ? k.repeat_interleave(groups, 1) : k;  // (B, Hq, S, D)
    const torch::Tensor v_full = groups > 1 ? v.repeat_interleave(groups, 1) : v;
    const torch::Tensor context = at::scaled_dot_product_attention(
        q, k_full, v_full, allowed.squeeze(2), 0.0, false);  // (B, Hq, T, D)
    return o_proj(context.transpose(1, 2).reshape({batch, steps, heads_ * head_dim_}));
  }

  // Grouped-query attention without repeating k/v: the G query heads that share a kv head
  // are stacked along the query axis, so each (batch, kv head) is one plain matmul against
  // the cache view (no broadcast, hence no copy of the cached keys and values).
  const torch::Tensor q_stacked = q.reshape({batch, kv_heads_, groups * steps, head_dim_});
  torch::Tensor scores = torch::matmul(q_stacked, k.transpose(-1, -2)) *
                         (1.0 / std::sqrt(static_cast<double>(head_dim_)));  // (B, Hkv, G*T, S)
  scores = scores.view({batch, kv_heads_, groups, steps, keys})
               .masked_fill(allowed.logical_not(), lowest_finite(scores.scalar_type()));
  const torch::Tensor probabilities = torch::softmax(scores, -1, torch::kFloat)
                                          .to(v.scalar_type())
                                          .view({batch, kv_heads_, groups * steps, keys});
  const torch::Tensor context = torch::matmul(probabilities, v);  // (B, Hkv, G*T, D)
  return o_proj(context.view({batch, heads_, steps, head_dim_})
                    .transpose(1, 2)
                    .reshape({batch, steps, heads_ * head_dim_}));
}

torch::Tensor AttentionImpl::forward_decode(const torch::Tensor& x, const torch::Tensor& cos,
                                            const torch::Tensor& sin, const torch::Tensor& key_mask,
                                            KVCache& cache, int64_t layer) {
  const int64_t batch = x.size(0);
  const torch::Tensor context = kernels::decode_attention(
      q_proj(x).view({batch, -1}), k_proj(x).view({batch, -1}), v_proj(x).view({batch, -1}),
      q_norm ? q_norm->weight : torch::Tensor(), k_norm ? k_norm->weight : torch::Tensor(),
      q_norm ? q_norm->eps() : 0.0, cos, sin, cache.keys[layer], cache.values[layer], cache.length,
      key_mask, heads_);  // (B, Hq·D)
  return o_proj(context).view({batch, 1, -1});
}

MLPImpl::MLPImpl(const ModelConfig& config) {
  const bool bias = config.model_type == "llama" && config.mlp_bias;
  gate_proj =
      register_module("gate_proj", make_linear(config.hidden_size, config.intermediate_size, bias));
  up_proj =
      register_module("up_proj", make_linear(config.hidden_size, config.intermediate_size, bias));
  down_proj =
      register_module("down_proj", make_linear(config.intermediate_size, config.hidden_size, bias));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

torch::Tensor MLPImpl::forward_decode(const torch::Tensor& x) {
  return down_proj(kernels::silu_mul(gate_proj(x), up_proj(x)));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& config) {
  self_attn = register_module("self_attn", Attention(config));
  mlp = register_module("mlp", MLP(config));
  input_layernorm =
      register_module("input_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                        const torch::Tensor& sin, const torch::Tensor& allowed,
                                        KVCache* cache, int64_t layer) {
  const torch::Tensor h = x + self_attn(input_layernorm(x), cos, sin, allowed, cache, layer);
  return h + mlp(post_attention_layernorm(h));
}

torch::Tensor DecoderLayerImpl::forward_decode(const torch::Tensor& x, const torch::Tensor& cos,
                                               const torch::Tensor& sin, const torch::Tensor& key_mask,
                                               KVCache& cache, int64_t layer) {
  const torch::Tensor attended =
      self_attn->forward_decode(kernels::rms_norm(x, input_layernorm->weight, input_layernorm->eps()),
                                cos, sin, key_mask, cache, layer);
  const torch::Tensor h = x + attended;
  return h + mlp->forward_decode(
                 kernels::rms_norm(h, post_attention_layernorm->weight, post_attention_layernorm->eps()));
}

DecoderImpl::DecoderImpl(const ModelConfig& config) {
  embed_tokens =
      register_module("embed_tokens", torch::nn::Embedding(config.vocab_size, config.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) layers->push_back(DecoderLayer(config));
  norm = register_module("norm", RMSNorm(config.hidden_size, config.rms_norm_eps));
}

torch::Tensor rope_inverse_frequencies(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  torch::Tensor inv_freq =
      1.0 / torch::pow(config.rope_theta, torch::arange(0, dim, 2, torch::kLong).to(torch::kFloat) /
                                              static_cast<double>(dim));  // (D/2)
  if (config.rope_scaling.type == "llama3") {
    // Llama 3.1's frequency-dependent scaling: long wavelengths are divided by `factor`,
    // short ones kept, and the band between them interpolated smoothly.
    const RopeScaling& s = config.rope_scaling;
    const double old_context = static_cast<double>(s.original_max_position_embeddings);
    const double low_freq_wavelen = old_context / s.low_freq_factor;
    const double high_freq_wavelen = old_context / s.high_freq_factor;
    const torch::Tensor wavelen = 2.0 * M_PI / inv_freq;
    torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
    const torch::Tensor smooth =
        (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    const torch::Tensor smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
    const torch::Tensor medium =
        (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
    inv_freq = torch::where(medium, smoothed, scaled);
  }
  return inv_freq;
}

TransformerImpl::TransformerImpl(ModelConfig config) : config_(std::move(config)) {
  config_.validate("model config");
  model = register_module("model", Decoder(config_));
  if (!config_.tie_word_embeddings) {
    lm_head =
        register_module("lm_head", make_linear(config_.hidden_size, config_.vocab_size, false));
  }
  // Not a registered buffer: module.to(bf16) would round it, and positions × frequencies
  // must stay in fp32 (transformers computes them in fp32 too).
  inv_freq_ = rope_inverse_frequencies(config_);
}

AttentionKernel parse_attention_kernel(const std::string& name) {
  if (name == "explicit") return AttentionKernel::explicit_softmax;
  if (name == "sdpa") return AttentionKernel::sdpa;
  throw std::invalid_argument("attention kernel: expected explicit or sdpa, got '" + name + "'");
}

void TransformerImpl::set_attention(AttentionKernel kernel) {
  attention_ = kernel;
  for (const auto& layer : *model->layers) layer->as<DecoderLayer>()->self_attn->kernel = kernel;
}

torch::Tensor TransformerImpl::output_weight() {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

// One decoder layer under activation checkpointing: forward without a graph, keeping only the
// layer's input; backward runs the layer again with a graph and back-propagates through it,
// which accumulates the layer's parameter gradients and returns the input's (the re-entrant
// scheme of torch.utils.checkpoint). The layer has no randomness, so the recomputation is
// the same computation.
class RecomputedLayer : public torch::autograd::Function<RecomputedLayer> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin,
                               const torch::Tensor& allowed, DecoderLayerImpl* layer, int64_t index) {
    ctx->save_for_backward({x, cos, sin, allowed});
    ctx->saved_data["layer"] = reinterpret_cast<int64_t>(layer);
    ctx->saved_data["index"] = index;
    // The recomputation runs under the same autocast as this forward (backward runs outside
    // any guard, possibly on another thread).
    ctx->saved_data["autocast"] = autocast_enabled(x.device().type());
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(autocast_dtype(x.device().type()));
    torch::NoGradGuard no_grad;
    return layer->forward(x, cos, sin, allowed, nullptr, index);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    const torch::Tensor x = saved[0].detach().requires_grad_(true);
    torch::Tensor out;
    {
      torch::AutoGradMode enable_grad(true);
      const AutocastGuard autocast(
          x.device().type(), ctx->saved_data["autocast"].toBool(),
          static_cast<torch::ScalarType>(ctx->saved_data["autocast_dtype"].toInt()));
      out = layer->forward(x, saved[1], saved[2], saved[3], nullptr, ctx->saved_data["index"].toInt());
    }
    torch::autograd::backward({out}, {grads[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor TransformerImpl::run_layers(const torch::Tensor& input_ids,
                                          const torch::Tensor& position_ids,
                                          const torch::Tensor& key_mask, KVCache* cache) {
  // cos/sin (B, T, D) in fp32 from the positions, as transformers' rotary embedding does.
  const torch::Tensor freqs = position_ids.to(torch::kFloat).unsqueeze(-1) *
                              inv_freq_.to(input_ids.device()).view({1, 1, -1});  // (B, T, D/2)
  const torch::Tensor angles = torch::cat({freqs, freqs}, -1);                    // (B, T, D)
  const torch::Tensor cos = angles.cos();
  const torch::Tensor sin = angles.sin();
  const int64_t layer_count = static_cast<int64_t>(model->layers->size());
  // One token per row against the cache, no gradients, CPU fp32: the fused decode step.
  if (fused_decode_ && cache != nullptr && input_ids.size(1) == 1 && !cache->keys.empty() &&
      cache->keys[0].is_contiguous() && cache->keys[0].scalar_type() == torch::kFloat &&
      kernels::decode_fusable(model->embed_tokens->weight) &&
      !autocast_enabled(input_ids.device().type()) && key_mask.device().is_cpu() &&
      key_mask.stride(1) == 1) {
    torch::Tensor x = model->embed_tokens(input_ids);               // (B, 1, H)
    const torch::Tensor row_cos = cos.select(1, 0).contiguous();  // (B, D)
    const torch::Tensor row_sin = sin.select(1, 0).contiguous();
    for (int64_t layer = 0; layer < layer_count; ++layer) {
      x = model->layers[layer]->as<DecoderLayer>()->forward_decode(x, row_cos, row_sin, key_mask,
                                                                   *cache, layer);
    }
    cache->length += 1;
    ++fused_decode_steps_;
    return kernels::rms_norm(x, model->norm->weight, model->norm->eps());
  }
  // Which keys each query may attend to, computed once for all layers: query i sits at
  // cache position past + i and sees the real keys j <= past + i.
  const int64_t batch = input_ids.size(0);
  const int64_t steps = input_ids.size(1);
  const int64_t past = cache != nullptr ? cache->length : 0;
  const int64_t keys = past + steps;
  const auto index_options = torch::TensorOptions().dtype(torch::kLong).device(input_ids.device());
  const torch::Tensor causal = torch::arange(keys, index_options).unsqueeze(0) <=
                               torch::arange(past, keys, index_options).unsqueeze(1);  // (T, S)
  torch::Tensor allowed =
      causal.view({1, 1, 1, steps, keys}) & key_mask.view({batch, 1, 1, 1, keys});  // (B,1,1,T,S)
  if (attention_ == AttentionKernel::sdpa) {
    // A query with no visible key (left padding) may see its own position: fused kernels
    // return NaN or 0 for a fully masked row, and a NaN would reach the real rows through
    // 0 · NaN in the next layer's weighted sum.
    const torch::Tensor own = torch::arange(keys, index_options).unsqueeze(0) ==
                              torch::arange(past, keys, index_options).unsqueeze(1);  // (T, S)
    const torch::Tensor blind = allowed.any(-1, /*keepdim=*/true).logical_not();       // (B,1,1,T,1)
    allowed = allowed | (blind & own.view({1, 1, 1, steps, keys}));
  }
  torch::Tensor x = model->embed_tokens(input_ids);                                 // (B, T, H)
  const bool recompute = activation_checkpointing_ && cache == nullptr && torch::GradMode::is_enabled();
  for (int64_t layer = 0; layer < layer_count; ++layer) {
    DecoderLayerImpl* decoder_layer = model->layers[layer]->as<DecoderLayer>();
    x = recompute && x.requires_grad() ? RecomputedLayer::apply(x, cos, sin, allowed, decoder_layer, layer)
                  : decoder_layer->forward(x, cos, sin, allowed, cache, layer);
  }
  if (cache != nullptr) cache->length += input_ids.size(1);
  return model->norm(x);
}

torch::Tensor TransformerImpl::hidden_states(const torch::Tensor& input_ids,
                                             const torch::Tensor& attention_mask,
                                             const torch::Tensor& position_ids) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be (B, T), got ", input_ids.sizes());
  const torch::Tensor mask = attention_mask.defined()
                                 ? attention_mask.to(torch::kBool)
                                 : torch::ones_like(input_ids, torch::kBool);  // (B, T)
  const torch::Tensor positions =
      position_ids.defined() ? position_ids
                             : (mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0);  // (B, T)
  return run_layers(input_ids, positions, mask, nullptr);
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& input_ids,
                                       const torch::Tensor& attention_mask,
                                       const torch::Tensor& position_ids) {
  return torch::matmul(hidden_states(input_ids, attention_mask, position_ids),
                       output_weight().t());  // (B, T, V)
}

torch::Tensor TransformerImpl::forward_cached(const torch::Tensor& input_ids,
                                              const torch::Tensor& position_ids,
                                              const torch::Tensor& key_mask, KVCache& cache) {
  TORCH_CHECK(cache.length + input_ids.size(1) <= cache.capacity(),
              "KV cache overflow: ", cache.length, " + ", input_ids.size(1), " > capacity ",
              cache.capacity());
  TORCH_CHECK(key_mask.size(1) == cache.length + input_ids.size(1),
              "key_mask must cover the cached and new positions");
  const torch::Tensor hidden =
      run_layers(input_ids, position_ids, key_mask.to(torch::kBool), &cache);
  return torch::matmul(hidden, output_weight().t());  // (B, T_new, V)
}

void initialize_weights(Transformer& model) {
  torch::NoGradGuard no_grad;
  const double std = model->config().initializer_range;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& parameter = item.value();
    const bool is_norm = name.find("norm") != std::string::npos;
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      parameter.zero_();
    } else if (is_norm) {
      parameter.fill_(1.0);
    } else {
      parameter.normal_(0.0, std);
    }
  }
}

}  // namespace gopd::model
