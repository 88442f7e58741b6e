// Reads tokenizer.json with nlohmann's SAX interface: everything is built into a JSON tree
// except model.vocab (~150 000 entries for Qwen) and model.merges (as many), which are streamed
// straight into the BPE model's tables. As a tree they would cost a std::map node per token and
// a vector of strings per merge — most of the load time — only to be copied once more.
#include "gopd/core/error.h"
#include "tokenizer/hf_internal.h"

namespace gopd::tokenizer::hf {
namespace {

class TokenizerJsonReader {
 public:
  using number_integer_t = Json::number_integer_t;
  using number_unsigned_t = Json::number_unsigned_t;
  using number_float_t = Json::number_float_t;
  using string_t = Json::string_t;
  using binary_t = Json::binary_t;

  TokenizerJsonReader(Json* root, const Source& source, BpeTables* tables)
      : dom_(*root), source_(source), tables_(tables) {}

  bool null() { return scalar("null") || dom_.null(); }
  bool boolean(bool value) { return scalar("a boolean") || dom_.boolean(value); }
  bool number_integer(number_integer_t value) {
    return scalar("a negative number") || dom_.number_integer(value);
  }
  bool number_unsigned(number_unsigned_t value) {
    if (mode_ == Mode::kVocab) {
      if (value > INT32_MAX) bad_vocab_value("a number above 2^31");
      tables_->vocab.set(vocab_key_, static_cast<int32_t>(value));
      return true;
    }
    return scalar("a number") || dom_.number_unsigned(value);
  }
  bool number_float(number_float_t value, const string_t& text) {
    return scalar("a fractional number") || dom_.number_float(value, text);
  }
  bool binary(binary_t& value) { return scalar("binary data") || dom_.binary(value); }

  bool string(string_t& value) {
    if (mode_ == Mode::kVocab) bad_vocab_value("a string");
    if (mode_ == Mode::kMerges) {
      if (in_merge_pair_) {
        pair_.push_back(std::move(value));
        return true;
      }
      size_t space = value.find(' ');
      if (space == std::string::npos || value.find(' ', space + 1) != std::string::npos) {
        throw_malformed(source_, merge_path(),
                        "expected \"left right\" (exactly one space), "
                        "found " +
                            describe(Json(value)));
      }
      tables_->merges.emplace_back(value.substr(0, space), value.substr(space + 1));
      return true;
    }
    return dom_.string(value);
  }

  bool start_object(std::size_t size) {
    if (mode_ == Mode::kVocab) bad_vocab_value("an object");
    if (mode_ == Mode::kMerges) bad_merge("an object");
    if (streamable("vocab")) {
      mode_ = Mode::kVocab;
      tables_->has_vocab = true;
      if (size != static_cast<std::size_t>(-1)) tables_->vocab.reserve(size);
      return true;
    }
    open_container(/*is_object=*/true);
    return dom_.start_object(size);
  }

  bool key(string_t& value) {
    if (mode_ == Mode::kVocab) {
      vocab_key_ = std::move(value);
      return true;
    }
    containers_.back().key = value;
    return dom_.key(value);
  }

  bool end_object() {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kNone;
      return dom_.null();  // the tree keeps "vocab": null
    }
    containers_.pop_back();
    return dom_.end_object();
  }

  bool start_array(std::size_t size) {
    if (mode_ == Mode::kVocab) bad_vocab_value("an array");
    if (mode_ == Mode::kMerges) {
      if (in_merge_pair_) bad_merge("a nested array");
      in_merge_pair_ = true;
      pair_.clear();
      return true;
    }
    if (streamable("merges")) {
      mode_ = Mode::kMerges;
      tables_->has_merges = true;
      if (size != static_cast<std::size_t>(-1)) tables_->merges.reserve(size);
      return true;
    }
    open_container(/*is_object=*/false);
    return dom_.start_array(size);
  }

  bool end_array() {
    if (mode_ == Mode::kMerges) {
      if (in_merge_pair_) {
        in_merge_pair_ = false;
        if (pair_.size() != 2)
          bad_merge("an array of " + std::to_string(pair_.size()) + " strings");
        tables_->merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
        return true;
      }
      mode_ = Mode::kNone;
      return dom_.null();  // the tree keeps "merges": null
    }
    containers_.pop_back();
    return dom_.end_array();
  }

  template <typename Exception>  // the exact type, so that Json::parse_error is what is thrown
  bool parse_error(std::size_t position, const std::string& last_token, const Exception& error) {
    return dom_.parse_error(position, last_token, error);
  }

 private:
  enum class Mode { kNone, kVocab, kMerges };
  struct Container {
    bool is_object;
    std::string key;  // the latest key, for objects
  };

  // The value about to start is root["model"][name].
  bool streamable(const char* name) const {
    return containers_.size() == 2 && containers_[0].is_object && containers_[0].key == "model" &&
           containers_[1].is_object && containers_[1].key == name;
  }

  void open_container(bool is_object) { containers_.push_back(Container{is_object, {}}); }

  // Scalars inside the streamed regions are errors; false lets the caller forward the event.
  bool scalar(const char* kind) {
    if (mode_ == Mode::kVocab) bad_vocab_value(kind);
    if (mode_ == Mode::kMerges) bad_merge(kind);
    return false;
  }

  std::string merge_path() const {
    return "model.merges[" + std::to_string(tables_->merges.size()) + "]";
  }

  [[noreturn]] void bad_vocab_value(const std::string& found) const {
    throw_malformed(source_, "model.vocab." + vocab_key_,
                    "expected a token id (a non-negative integer), found " + found);
  }

  [[noreturn]] void bad_merge(const std::string& found) const {
    throw_malformed(source_, merge_path(),
                    "expected \"left right\" or [\"left\", \"right\"], found " + found);
  }

  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  const Source& source_;
  BpeTables* tables_;
  std::vector<Container> containers_;
  Mode mode_ = Mode::kNone;
  std::string vocab_key_;
  bool in_merge_pair_ = false;
  std::vector<std::string> pair_;
};

}  // namespace

Json read_tokenizer_json(const std::string& text, const Source& source, BpeTables* tables) {
  Json root;
  TokenizerJsonReader reader(&root, source, tables);
  Json::sax_parse(text, &reader);
  return root;
}

}  // namespace gopd::tokenizer::hf
