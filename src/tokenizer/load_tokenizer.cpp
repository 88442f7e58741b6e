// Implements load_tokenizer (tokenizer.h): picks tokenizer.json (HF BPE, preferred, as
// transformers' fast tokenizers do) or tokenizer.model (sentencepiece) in a model directory
// and derives TokenizerInfo from tokenizer_config.json and generation_config.json:
// - bos/eos/pad: the config's *_token entries (a string, {"content": …} or null); without a
//   tokenizer_config.json, a sentencepiece model's own ids; eos falls back to the first
//   generation_config.json eos_token_id;
// - stop_ids: eos, every generation_config.json eos_token_id (an int or a list), and the chat
//   format's end-of-turn token (<|im_end|>, <|eot_id|>) when the vocabulary has it;
// - chat_format: the config's "gopd_chat_format" (written by `gopd tokenizer train`), else
//   recognised from the chat_template text (or chat_template.jinja, where newer transformers
//   save it), else "none" — with a warning when a template exists but is not one gopd knows.
// Both config files are optional, as in transformers; a malformed one is an error (exit 2)
// naming the file and key.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "gopd/core/error.h"
#include "gopd/tokenizer/chat_format.h"
#include "gopd/tokenizer/hf_tokenizer.h"
#include "gopd/tokenizer/sentencepiece_tokenizer.h"
#include "gopd/tokenizer/tokenizer.h"

namespace gopd::tokenizer {
namespace {

namespace fs = std::filesystem;
using core::throw_bad_input;

std::string read_file(const fs::path& path) {
  std::ifstream input(path, std::ios::binary);
  if (!input) throw_bad_input(path.string() + ": cannot open file");
  return {std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
}

// The JSON object in `path`, or null when the file does not exist.
nlohmann::json read_optional_json_object(const fs::path& path) {
  std::error_code error;
  if (!fs::exists(path, error)) return nullptr;
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& parse_error) {
    throw_bad_input(path.string() + ": malformed JSON at byte " + std::to_string(parse_error.byte) +
                    ": expected one JSON object");
  } catch (const nlohmann::json::exception& error) {  // a number too large for a double
    throw_bad_input(path.string() + ": malformed JSON: " + error.what());
  }
  if (!value.is_object()) throw_bad_input(path.string() + ": expected a JSON object");
  return value;
}

// A special token entry: "text", {"content": "text", …} or null (none); absent → nullopt.
std::optional<std::string> token_entry(const nlohmann::json& config, const char* key,
                                       const fs::path& file, bool* present) {
  *present = false;
  if (config.is_null()) return std::nullopt;
  const auto found = config.find(key);
  if (found == config.end()) return std::nullopt;
  *present = true;
  if (found->is_null()) return std::nullopt;
  if (found->is_string()) return found->get<std::string>();
  if (found->is_object()) {
    const auto content = found->find("content");
    if (content != found->end() && content->is_string()) return content->get<std::string>();
  }
  throw_bad_input(file.string() + ": " + key +
                  ": expected a string, an object with a string \"content\", or null; found " +
                  found->dump());
}

int64_t id_of(const Tokenizer& tokenizer, const std::string& token, const fs::path& file,
              const std::string& key) {
  const std::optional<int64_t> id = tokenizer.token_to_id(token);
  if (!id) {
    throw_bad_input(file.string() + ": " + key + ": token \"" + token +
                    "\" is not in the tokenizer's vocabulary");
  }
  return *id;
}

struct AddedTokenEntry {
  int64_t id = 0;
  std::string content;
  bool special = false;
};

// tokenizer_config.json's added_tokens_decoder: {"id": {"content": …, "special": …}}, by id.
std::vector<AddedTokenEntry> read_added_tokens(const nlohmann::json& config, const fs::path& file) {
  std::vector<AddedTokenEntry> entries;
  if (config.is_null() || !config.contains("added_tokens_decoder")) return entries;
  const nlohmann::json& decoder = config.at("added_tokens_decoder");
  if (!decoder.is_object()) {
    throw_bad_input(file.string() + ": added_tokens_decoder: expected an object of id → token");
  }
  for (const auto& [key, value] : decoder.items()) {
    const std::string where = file.string() + ": added_tokens_decoder[\"" + key + "\"]";
    AddedTokenEntry entry;
    size_t used = 0;
    try {
      entry.id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || entry.id < 0) throw_bad_input(where + ": expected a token id key");
    if (!value.is_object() || !value.contains("content") || !value.at("content").is_string()) {
      throw_bad_input(where + ": expected an object with a string \"content\"");
    }
    entry.content = value.at("content").get<std::string>();
    const auto special = value.find("special");
    if (special != value.end() && !special->is_boolean()) {
      throw_bad_input(where + ": special: expected true or false");
    }
    entry.special = special != value.end() && special->get<bool>();
    entries.push_back(std::move(entry));
  }
  std::sort(entries.begin(), entries.end(),
            [](const AddedTokenEntry& a, const AddedTokenEntry& b) { return a.id < b.id; });
  return entries;
}

bool bool_entry(const nlohmann::json& config, const char* key, bool fallback,
                const fs::path& file) {
  if (config.is_null() || !config.contains(key) || config.at(key).is_null()) return fallback;
  if (!config.at(key).is_boolean()) {
    throw_bad_input(file.string() + ": " + key + ": expected true or false, found " +
                    config.at(key).dump());
  }
  return config.at(key).get<bool>();
}

// generation_config.json's eos_token_id: an integer or a list of integers.
std::vector<int64_t> generation_eos_ids(const nlohmann::json& generation, const fs::path& file,
                                        int64_t vocab_size) {
  std::vector<int64_t> ids;
  if (generation.is_null() || !generation.contains("eos_token_id")) return ids;
  const nlohmann::json& value = generation.at("eos_token_id");
  if (value.is_null()) return ids;
  const auto add = [&](const nlohmann::json& item) {
    if (!item.is_number_integer() || item.get<int64_t>() < 0 || item.get<int64_t>() >= vocab_size) {
      throw_bad_input(file.string() + ": eos_token_id: expected token ids in [0, " +
                      std::to_string(vocab_size) + "), found " + value.dump());
    }
    ids.push_back(item.get<int64_t>());
  };
  if (value.is_array()) {
    for (const auto& item : value) add(item);
  } else {
    add(value);
  }
  return ids;
}

// The chat_template text: a string, or transformers' list of {"name", "template"} (the
// "default" one); else chat_template.jinja beside the config.
std::string chat_template_text(const nlohmann::json& config, const fs::path& file,
                               const fs::path& directory) {
  if (!config.is_null() && config.contains("chat_template")) {
    const nlohmann::json& value = config.at("chat_template");
    if (value.is_string()) return value.get<std::string>();
    if (value.is_array()) {
      for (const auto& entry : value) {
        if (entry.is_object() && entry.value("name", "") == "default" &&
            entry.contains("template") && entry.at("template").is_string()) {
          return entry.at("template").get<std::string>();
        }
      }
      return "";
    }
    if (!value.is_null()) {
      throw_bad_input(file.string() +
                      ": chat_template: expected a string or a list of "
                      "{\"name\", \"template\"} objects");
    }
  }
  const fs::path jinja = directory / "chat_template.jinja";
  std::error_code error;
  if (fs::exists(jinja, error)) return read_file(jinja);
  return "";
}

}  // namespace

LoadedTokenizer load_tokenizer(const std::string& directory) {
  const fs::path root(directory);
  std::error_code error;
  if (!fs::is_directory(root, error)) {
    throw_bad_input(directory +
                    ": not a directory (expected a model or tokenizer directory "
                    "with tokenizer.json or tokenizer.model)");
  }
  const fs::path config_path = root / "tokenizer_config.json";
  const fs::path generation_path = root / "generation_config.json";
  const fs::path json_path = root / "tokenizer.json";
  const fs::path model_path = root / "tokenizer.model";
  const nlohmann::json config = read_optional_json_object(config_path);
  const nlohmann::json generation = read_optional_json_object(generation_path);
  const std::vector<AddedTokenEntry> added_tokens = read_added_tokens(config, config_path);

  LoadedTokenizer loaded;
  std::optional<SentencePieceSpecialIds> model_ids;
  if (fs::exists(json_path, error)) {
    loaded.tokenizer = load_hf_tokenizer(json_path.string());
  } else if (fs::exists(model_path, error)) {
    SentencePieceOptions options;
    for (const AddedTokenEntry& entry : added_tokens) {
      (entry.special ? options.special_tokens : options.added_tokens).push_back(entry.content);
    }
    options.add_bos_token = bool_entry(config, "add_bos_token", true, config_path);
    options.add_eos_token = bool_entry(config, "add_eos_token", false, config_path);
    loaded.tokenizer = load_sentencepiece_tokenizer(model_path.string(), options);
    model_ids = read_sentencepiece_special_ids(model_path.string());
  } else {
    throw_bad_input(directory + ": has neither tokenizer.json nor tokenizer.model");
  }
  const Tokenizer& tokenizer = *loaded.tokenizer;

  // The config's ids must be the tokenizer's: a mismatch means the files do not belong together.
  for (const AddedTokenEntry& entry : added_tokens) {
    const std::optional<int64_t> id = tokenizer.token_to_id(entry.content);
    if (!id || *id != entry.id) {
      throw_bad_input(config_path.string() + ": added_tokens_decoder[\"" +
                      std::to_string(entry.id) + "\"] is \"" + entry.content +
                      "\", but the tokenizer gives it " +
                      (id ? "id " + std::to_string(*id) : std::string("no id")));
    }
  }

  TokenizerInfo& info = loaded.info;
  const auto special_id = [&](const char* key, int64_t model_fallback) -> int64_t {
    bool present = false;
    const std::optional<std::string> token = token_entry(config, key, config_path, &present);
    if (token) return id_of(tokenizer, *token, config_path, key);
    return present ? -1 : model_fallback;
  };
  info.bos_id = special_id("bos_token", model_ids ? model_ids->bos_id : -1);
  info.eos_id = special_id("eos_token", model_ids ? model_ids->eos_id : -1);
  info.pad_id = special_id("pad_token", model_ids ? model_ids->pad_id : -1);
  const std::vector<int64_t> generation_eos =
      generation_eos_ids(generation, generation_path, tokenizer.vocab_size());
  if (info.eos_id < 0 && !generation_eos.empty()) info.eos_id = generation_eos.front();

  // Chat format.
  if (!config.is_null() && config.contains("gopd_chat_format")) {
    const nlohmann::json& value = config.at("gopd_chat_format");
    if (!value.is_string())
      throw_bad_input(config_path.string() + ": gopd_chat_format: expected a string");
    info.chat_format = value.get<std::string>();
    check_chat_format(info.chat_format, config_path.string() + ": gopd_chat_format");
  } else {
    const std::string chat_template = chat_template_text(config, config_path, root);
    const std::string detected = detect_chat_format(chat_template);
    info.chat_format = detected.empty() ? "none" : detected;
    if (!chat_template.empty() && detected.empty()) {
      spdlog::warn(
          "{}: chat_template is not one gopd renders (qwen3, chatml, llama3); chat "
          "prompts will use chat format \"none\" (message contents joined by newlines)",
          directory);
    }
  }

  const auto add_stop = [&](int64_t id) {
    if (id >= 0 &&
        std::find(info.stop_ids.begin(), info.stop_ids.end(), id) == info.stop_ids.end()) {
      info.stop_ids.push_back(id);
    }
  };
  add_stop(info.eos_id);
  for (const int64_t id : generation_eos) add_stop(id);
  for (const std::string& token : chat_format_stop_tokens(info.chat_format)) {
    if (const std::optional<int64_t> id = tokenizer.token_to_id(token)) add_stop(*id);
  }
  return loaded;
}

}  // namespace gopd::tokenizer
