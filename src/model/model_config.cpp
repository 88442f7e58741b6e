// Reads and writes Hugging Face config.json for llama / qwen2 / qwen3. Semantics follow
// transformers' LlamaConfig, Qwen2Config and Qwen3Config: defaults when a key is absent,
// `head_dim` optional, `num_key_value_heads` defaulting to the head count.
#include "gopd/model/model_config.h"

#include <algorithm>
#include <fstream>
#include <map>

#include "gopd/core/error.h"

namespace gopd::model {
namespace {

using core::throw_bad_input;

int64_t get_int(const nlohmann::json& json, const char* key, int64_t fallback,
                const std::string& source, bool required = false) {
  const auto found = json.find(key);
  if (found == json.end() || found->is_null()) {
    if (required) throw_bad_input(source + ": missing key \"" + key + "\"");
    return fallback;
  }
  if (!found->is_number_integer()) {
    throw_bad_input(source + ": key \"" + key + "\": expected an integer, got " + found->dump());
  }
  return found->get<int64_t>();
}

double get_number(const nlohmann::json& json, const char* key, double fallback,
                  const std::string& source) {
  const auto found = json.find(key);
  if (found == json.end() || found->is_null()) return fallback;
  if (!found->is_number()) {
    throw_bad_input(source + ": key \"" + key + "\": expected a number, got " + found->dump());
  }
  return found->get<double>();
}

bool get_bool(const nlohmann::json& json, const char* key, bool fallback,
              const std::string& source) {
  const auto found = json.find(key);
  if (found == json.end() || found->is_null()) return fallback;
  if (!found->is_boolean()) {
    throw_bad_input(source + ": key \"" + key + "\": expected true or false, got " + found->dump());
  }
  return found->get<bool>();
}

}  // namespace

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](const char* key, int64_t value) {
    if (value <= 0) {
      throw_bad_input(source + ": \"" + key + "\": expected a positive integer, got " +
                      std::to_string(value));
    }
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  if (num_attention_heads % num_key_value_heads != 0) {
    throw_bad_input(source + ": num_attention_heads (" + std::to_string(num_attention_heads) +
                    ") must be a multiple of num_key_value_heads (" +
                    std::to_string(num_key_value_heads) + ")");
  }
  if (head_dim % 2 != 0) {
    throw_bad_input(source + ": head_dim must be even for rotary embeddings, got " +
                    std::to_string(head_dim));
  }
  if (!(rms_norm_eps > 0)) throw_bad_input(source + ": rms_norm_eps must be positive");
  if (!(rope_theta > 0)) throw_bad_input(source + ": rope_theta must be positive");
}

ModelConfig model_config_for(const std::string& family, int64_t vocab, int64_t hidden, int64_t layers,
                             int64_t heads, int64_t kv_heads, int64_t intermediate) {
  ModelConfig config;
  config.model_type = family;
  config.vocab_size = vocab;
  config.hidden_size = hidden;
  config.intermediate_size = intermediate;
  config.num_hidden_layers = layers;
  config.num_attention_heads = heads;
  config.num_key_value_heads = kv_heads;
  config.head_dim = heads > 0 ? hidden / heads : 0;
  config.qk_norm = family == "qwen3";
  config.tie_word_embeddings = family != "llama";
  return config;
}

ModelConfig model_config_from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw_bad_input(source + ": expected a JSON object");
  ModelConfig config;
  const auto type = json.find("model_type");
  if (type == json.end() || !type->is_string()) {
    throw_bad_input(source +
                    ": missing string key \"model_type\" (expected llama, qwen2 or qwen3)");
  }
  config.model_type = type->get<std::string>();
  if (std::find(kModelTypes.begin(), kModelTypes.end(), config.model_type) == kModelTypes.end()) {
    throw_bad_input(source + ": unsupported model_type \"" + config.model_type +
                    "\" (gopd supports llama, qwen2, qwen3)");
  }
  if (const auto act = json.find("hidden_act"); act != json.end() && *act != "silu") {
    throw_bad_input(source + ": unsupported hidden_act " + act->dump() + " (expected \"silu\")");
  }
  if (get_bool(json, "use_sliding_window", false, source)) {
    throw_bad_input(source + ": unsupported feature use_sliding_window: true");
  }
  config.vocab_size = get_int(json, "vocab_size", 0, source, true);
  config.hidden_size = get_int(json, "hidden_size", 0, source, true);
  config.intermediate_size = get_int(json, "intermediate_size", 0, source, true);
  config.num_hidden_layers = get_int(json, "num_hidden_layers", 0, source, true);
  config.num_attention_heads = get_int(json, "num_attention_heads", 0, source, true);
  config.num_key_value_heads =
      get_int(json, "num_key_value_heads", config.num_attention_heads, source);
  const int64_t default_head_dim =
      config.num_attention_heads > 0 ? config.hidden_size / config.num_attention_heads : 0;
  config.head_dim = get_int(json, "head_dim", default_head_dim, source);
  config.rms_norm_eps = get_number(json, "rms_norm_eps", 1e-6, source);
  config.rope_theta = get_number(json, "rope_theta", 10000.0, source);
  config.max_position_embeddings = get_int(json, "max_position_embeddings", 2048, source);
  config.tie_word_embeddings = get_bool(json, "tie_word_embeddings", false, source);
  config.attention_bias = get_bool(json, "attention_bias", false, source);
  config.mlp_bias = get_bool(json, "mlp_bias", false, source);
  config.qk_norm = config.model_type == "qwen3";
  config.initializer_range = get_number(json, "initializer_range", 0.02, source);
  config.bos_token_id = get_int(json, "bos_token_id", -1, source);
  config.pad_token_id = get_int(json, "pad_token_id", -1, source);
  if (const auto eos = json.find("eos_token_id"); eos != json.end() && !eos->is_null()) {
    if (eos->is_number_integer()) {
      config.eos_token_ids = {eos->get<int64_t>()};
    } else if (eos->is_array()) {
      for (const auto& id : *eos) {
        if (!id.is_number_integer()) throw_bad_input(source + ": eos_token_id: expected integers");
        config.eos_token_ids.push_back(id.get<int64_t>());
      }
    } else {
      throw_bad_input(source + ": eos_token_id: expected an integer or a list of integers");
    }
  }
  // transformers >= 5 writes "dtype" where older versions wrote "torch_dtype".
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (const auto dtype = json.find(key); dtype != json.end() && dtype->is_string()) {
      config.torch_dtype = dtype->get<std::string>();
    }
  }
  if (const auto layer_types = json.find("layer_types");
      layer_types != json.end() && layer_types->is_array()) {
    for (const auto& type : *layer_types) {
      if (type != "full_attention") {
        throw_bad_input(source + ": unsupported feature layer_types: " + type.dump() +
                        " (gopd supports full_attention layers only)");
      }
    }
  }
  // RoPE: transformers < 5 writes rope_theta and rope_scaling at the top level; transformers
  // >= 5 writes both into one rope_parameters object ({rope_theta, rope_type, factor, ...}).
  const auto read_rope_type = [&](const nlohmann::json& scaling, const std::string& key) {
    if (!scaling.is_object()) throw_bad_input(source + ": " + key + ": expected an object or null");
    std::string rope_type = scaling.value("rope_type", scaling.value("type", std::string("default")));
    if (rope_type == "default") rope_type = "none";
    if (rope_type != "llama3" && rope_type != "none") {
      throw_bad_input(source + ": unsupported " + key + " type \"" + rope_type +
                      "\" (gopd supports default and llama3)");
    }
    config.rope_scaling.type = rope_type;
    if (rope_type == "llama3") {
      config.rope_scaling.factor = get_number(scaling, "factor", 8.0, source);
      config.rope_scaling.low_freq_factor = get_number(scaling, "low_freq_factor", 1.0, source);
      config.rope_scaling.high_freq_factor = get_number(scaling, "high_freq_factor", 4.0, source);
      config.rope_scaling.original_max_position_embeddings =
          get_int(scaling, "original_max_position_embeddings", 8192, source);
    }
  };
  if (const auto parameters = json.find("rope_parameters");
      parameters != json.end() && !parameters->is_null()) {
    read_rope_type(*parameters, "rope_parameters");
    config.rope_theta = get_number(*parameters, "rope_theta", config.rope_theta, source);
  } else if (const auto scaling = json.find("rope_scaling");
             scaling != json.end() && !scaling->is_null()) {
    read_rope_type(*scaling, "rope_scaling");
  }
  config.validate(source);
  return config;
}

ModelConfig read_model_config(const std::string& directory) {
  const std::string path = directory + "/config.json";
  std::ifstream input(path);
  if (!input) throw_bad_input(path + ": cannot open (is " + directory + " a model directory?)");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(input);
  } catch (const nlohmann::json::exception& error) {
    // parse_error, and out_of_range for a number too large for a double (found by fuzzing).
    throw_bad_input(path + ": malformed JSON: " + error.what());
  }
  return model_config_from_json(json, path);
}

nlohmann::json model_config_to_json(const ModelConfig& config) {
  static const std::map<std::string, std::string> kArchitectures = {
      {"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"}};
  nlohmann::json json = {
      {"architectures", {kArchitectures.at(config.model_type)}},
      {"model_type", config.model_type},
      {"vocab_size", config.vocab_size},
      {"hidden_size", config.hidden_size},
      {"intermediate_size", config.intermediate_size},
      {"num_hidden_layers", config.num_hidden_layers},
      {"num_attention_heads", config.num_attention_heads},
      {"num_key_value_heads", config.num_key_value_heads},
      {"head_dim", config.head_dim},
      {"hidden_act", "silu"},
      {"rms_norm_eps", config.rms_norm_eps},
      {"rope_theta", config.rope_theta},
      {"max_position_embeddings", config.max_position_embeddings},
      {"tie_word_embeddings", config.tie_word_embeddings},
      {"initializer_range", config.initializer_range},
      {"torch_dtype", config.torch_dtype},
      {"use_cache", true},
      {"attention_dropout", 0.0},
  };
  if (config.model_type != "qwen2") json["attention_bias"] = config.attention_bias;
  if (config.model_type == "llama") json["mlp_bias"] = config.mlp_bias;
  if (config.model_type != "llama") {
    json["use_sliding_window"] = false;
    json["sliding_window"] = nullptr;
    json["max_window_layers"] = config.num_hidden_layers;
  }
  if (config.rope_scaling.type == "llama3") {
    json["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", config.rope_scaling.factor},
        {"low_freq_factor", config.rope_scaling.low_freq_factor},
        {"high_freq_factor", config.rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", config.rope_scaling.original_max_position_embeddings}};
  } else {
    json["rope_scaling"] = nullptr;
  }
  if (config.bos_token_id >= 0) json["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_ids.size() == 1) json["eos_token_id"] = config.eos_token_ids[0];
  if (config.eos_token_ids.size() > 1) json["eos_token_id"] = config.eos_token_ids;
  if (config.pad_token_id >= 0) json["pad_token_id"] = config.pad_token_id;
  return json;
}

nlohmann::json generation_config_json(const ModelConfig& config) {
  nlohmann::json json = {{"do_sample", true}, {"temperature", 1.0}, {"top_p", 1.0}};
  if (config.bos_token_id >= 0) json["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_ids.size() == 1) json["eos_token_id"] = config.eos_token_ids[0];
  if (config.eos_token_ids.size() > 1) json["eos_token_id"] = config.eos_token_ids;
  if (config.pad_token_id >= 0) json["pad_token_id"] = config.pad_token_id;
  return json;
}

}  // namespace gopd::model
