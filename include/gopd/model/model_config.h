// Hyper-parameters of a decoder-only transformer, read from and written to a Hugging Face
// `config.json`. One struct covers the three families gopd runs (model_type llama, qwen2,
// qwen3); what differs between them is a handful of flags (biases, q/k norms, tying).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gopd::model {

inline const std::vector<std::string> kModelTypes = {"llama", "qwen2", "qwen3"};

struct RopeScaling {
  std::string type = "none";  // none | llama3
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type = "qwen3";
  int64_t vocab_size = 0;  // embedding rows (may exceed the tokenizer's size)
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // grouped-query attention; = heads when absent
  int64_t head_dim = 0;             // = hidden / heads when absent
  double rms_norm_eps = 1e-6;
  double rope_theta = 1000000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 32768;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v/o biases (llama, qwen3); qwen2 always has q/k/v
  bool mlp_bias = false;        // llama only
  bool qk_norm = false;         // per-head RMSNorm of q and k (qwen3)
  double initializer_range = 0.02;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  int64_t pad_token_id = -1;
  std::string torch_dtype = "float32";

  // Whether q/k/v (and o) projections carry a bias under this family's rules.
  bool qkv_bias() const { return model_type == "qwen2" || attention_bias; }
  bool o_bias() const { return model_type != "qwen2" && attention_bias; }

  // Fills family defaults and checks consistency; `source` names the file in errors (exit 2).
  void validate(const std::string& source) const;
};

// A model of `family` ("llama", "qwen2", "qwen3") with the given sizes, as `gopd init-model`
// builds one: head_dim = hidden / heads, qk_norm for qwen3, embeddings tied for qwen2/qwen3 (as
// their small models are) and untied for llama. The tiny models of tests and benchmarks too.
ModelConfig model_config_for(const std::string& family, int64_t vocab, int64_t hidden, int64_t layers,
                             int64_t heads, int64_t kv_heads, int64_t intermediate);

// Parses a config.json object; unsupported features (another model_type, hidden_act other
// than silu, a rope_scaling type other than llama3, sliding windows) → exit 2 naming them.
ModelConfig model_config_from_json(const nlohmann::json& json, const std::string& source);
ModelConfig read_model_config(const std::string& directory);

// The config.json object transformers expects for this family (architectures, model_type, …).
nlohmann::json model_config_to_json(const ModelConfig& config);
// generation_config.json: bos/eos/pad ids and sampling defaults.
nlohmann::json generation_config_json(const ModelConfig& config);

}  // namespace gopd::model
