// Text utilities of the tokenizer.json implementation: error helpers for tokenizer.json values,
// UTF-8 decoding and lossy repair, the Unicode properties HF's Rust code takes from `char`
// methods and the `regex` crate, Unicode normalisation and lowercasing through ICU, and GPT-2's
// byte ↔ character table. ICU (libicu-dev, already a Debian 12 base library) is used rather than
// hand-written tables so that NFC composition, canonical reordering and the property data follow
// one maintained Unicode release.
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/ustring.h>

#include "gopd/core/error.h"
#include "tokenizer/hf_internal.h"

namespace gopd::tokenizer::hf {

// ---- errors ---------------------------------------------------------------------------------

void throw_unsupported(const Source& source, const std::string& feature) {
  core::throw_bad_input(source.file + ": unsupported tokenizer.json feature: " + feature);
}

std::string describe(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  constexpr size_t kMaxChars = 80;
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

void throw_malformed(const Source& source, const std::string& key_path, const std::string& expected,
                     const Json& found) {
  core::throw_bad_input(source.file + ": " + key_path + ": expected " + expected + ", found " +
                        (found.is_null() ? std::string("null") : describe(found)));
}

void throw_malformed(const Source& source, const std::string& key_path,
                     const std::string& message) {
  core::throw_bad_input(source.file + ": " + key_path + ": " + message);
}

const Json& require(const Json& object, const char* key, const Source& source,
                    const std::string& key_path) {
  if (!object.is_object()) throw_malformed(source, key_path, "an object", object);
  auto it = object.find(key);
  if (it == object.end()) {
    throw_malformed(source, key_path, std::string("missing key \"") + key + "\"");
  }
  return *it;
}

std::string get_string(const Json& object, const char* key, const Source& source,
                       const std::string& key_path) {
  const Json& value = require(object, key, source, key_path);
  if (!value.is_string()) throw_malformed(source, key_path + "." + key, "a string", value);
  return value.get<std::string>();
}

bool get_bool(const Json& object, const char* key, bool fallback, const Source& source,
              const std::string& key_path) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw_malformed(source, key_path + "." + key, "true or false", *it);
  return it->get<bool>();
}

std::optional<std::string> get_optional_string(const Json& object, const char* key,
                                               const Source& source, const std::string& key_path) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw_malformed(source, key_path + "." + key, "a string or null", *it);
  return it->get<std::string>();
}

std::string type_of(const Json& stage, const Source& source, const std::string& key_path) {
  return get_string(stage, "type", source, key_path);
}

// ---- UTF-8 ----------------------------------------------------------------------------------

char32_t next_code_point(std::string_view text, size_t* position) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = *position;
  unsigned char lead = bytes[i];
  int64_t length = utf8_sequence_length(lead);
  char32_t code_point;
  switch (length) {
    case 1:
      code_point = lead;
      break;
    case 2:
      code_point = (static_cast<char32_t>(lead & 0x1F) << 6) | (bytes[i + 1] & 0x3F);
      break;
    case 3:
      code_point = (static_cast<char32_t>(lead & 0x0F) << 12) |
                   (static_cast<char32_t>(bytes[i + 1] & 0x3F) << 6) | (bytes[i + 2] & 0x3F);
      break;
    default:
      code_point = (static_cast<char32_t>(lead & 0x07) << 18) |
                   (static_cast<char32_t>(bytes[i + 1] & 0x3F) << 12) |
                   (static_cast<char32_t>(bytes[i + 2] & 0x3F) << 6) | (bytes[i + 3] & 0x3F);
      break;
  }
  *position = i + static_cast<size_t>(length);
  return code_point;
}

void append_utf8(char32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

std::string utf8_lossy(std::string_view text) {
  static const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const size_t size = text.size();
  std::string out;
  out.reserve(size);
  size_t i = 0;
  while (i < size) {
    unsigned char lead = bytes[i];
    if (lead < 0x80) {
      out.push_back(static_cast<char>(lead));
      ++i;
      continue;
    }
    // Valid range of the second byte per lead byte (Unicode Table 3-7); later bytes are 80..BF.
    int64_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    }
    if (length == 0) {  // not a lead byte: a maximal invalid subpart of its own
      out += kReplacement;
      ++i;
      continue;
    }
    size_t j = i + 1;
    bool complete = true;
    for (int64_t k = 1; k < length; ++k, ++j) {
      unsigned char lo = k == 1 ? low : 0x80, hi = k == 1 ? high : 0xBF;
      if (j >= size || bytes[j] < lo || bytes[j] > hi) {
        complete = false;
        break;
      }
    }
    if (complete) {
      out.append(text.substr(i, static_cast<size_t>(length)));
    } else {
      out += kReplacement;  // the truncated prefix [i, j) is one maximal invalid subpart
    }
    i = j;
  }
  return out;
}

// ---- Unicode properties ---------------------------------------------------------------------

bool is_white_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return u_isUWhiteSpace(static_cast<UChar32>(c));
}

bool is_word_character(char32_t c) {
  if (c < 0x80) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }
  auto code_point = static_cast<UChar32>(c);
  return u_hasBinaryProperty(code_point, UCHAR_ALPHABETIC) ||
         (U_GET_GC_MASK(code_point) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0 ||
         u_hasBinaryProperty(code_point, UCHAR_JOIN_CONTROL);
}

bool is_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & (U_GC_ND_MASK | U_GC_NL_MASK | U_GC_NO_MASK)) !=
         0;
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
  }
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_P_MASK) != 0;
}

// ---- normalisation --------------------------------------------------------------------------

namespace {

bool is_ascii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

const icu::Normalizer2& normalizer_for(NormalForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = nullptr;
  switch (form) {
    case NormalForm::kNfc:
      normalizer = icu::Normalizer2::getNFCInstance(status);
      break;
    case NormalForm::kNfd:
      normalizer = icu::Normalizer2::getNFDInstance(status);
      break;
    case NormalForm::kNfkc:
      normalizer = icu::Normalizer2::getNFKCInstance(status);
      break;
    case NormalForm::kNfkd:
      normalizer = icu::Normalizer2::getNFKDInstance(status);
      break;
  }
  if (U_FAILURE(status) || normalizer == nullptr) {
    core::throw_runtime_failure(std::string("ICU: cannot load Unicode normalisation data: ") +
                                u_errorName(status));
  }
  return *normalizer;
}

}  // namespace

void unicode_normalize(NormalForm form, std::string* text) {
  if (is_ascii(*text)) return;  // ASCII is invariant under all four forms
  const icu::Normalizer2& normalizer = normalizer_for(form);
  UErrorCode status = U_ZERO_ERROR;
  icu::StringPiece piece(text->data(), static_cast<int32_t>(text->size()));
  if (normalizer.isNormalizedUTF8(piece, status) && U_SUCCESS(status)) return;
  status = U_ZERO_ERROR;
  std::string out;
  out.reserve(text->size() + text->size() / 4);
  icu::StringByteSink<std::string> sink(&out);
  normalizer.normalizeUTF8(0, piece, sink, nullptr, status);
  if (U_FAILURE(status)) {
    core::throw_runtime_failure(std::string("ICU: Unicode normalisation failed: ") +
                                u_errorName(status));
  }
  *text = std::move(out);
}

void lowercase(std::string* text) {
  if (is_ascii(*text)) {
    for (char& c : *text) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return;
  }
  std::string out;
  out.reserve(text->size());
  size_t position = 0;
  while (position < text->size()) {
    char32_t c = next_code_point(*text, &position);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
      continue;
    }
    // One character at a time, like Rust's char::to_lowercase: no context-dependent mappings.
    UChar source[2];
    int32_t source_length = 0;
    U16_APPEND_UNSAFE(source, source_length, static_cast<UChar32>(c));
    UChar lowered[8];
    UErrorCode status = U_ZERO_ERROR;
    int32_t lowered_length = u_strToLower(lowered, 8, source, source_length, "", &status);
    if (U_FAILURE(status)) {
      append_utf8(c, &out);
      continue;
    }
    for (int32_t i = 0; i < lowered_length;) {
      UChar32 lower;
      U16_NEXT_UNSAFE(lowered, i, lower);
      append_utf8(static_cast<char32_t>(lower), &out);
    }
  }
  *text = std::move(out);
}

// ---- byte-level alphabet --------------------------------------------------------------------

ByteLevelAlphabet::ByteLevelAlphabet() {
  // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68 bytes
  // take the code points 256, 257, ... in byte order, so no token contains whitespace/controls.
  bytes_.fill(-1);
  int next_extra = 0;
  for (int byte = 0; byte < 256; ++byte) {
    bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
                     (byte >= 0xAE && byte <= 0xFF);
    char32_t code_point = printable ? static_cast<char32_t>(byte) : 256 + next_extra++;
    append_utf8(code_point, &characters_[static_cast<size_t>(byte)]);
    bytes_[code_point] = static_cast<int16_t>(byte);
  }
}

const ByteLevelAlphabet& ByteLevelAlphabet::get() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

void ByteLevelAlphabet::append_mapped(std::string_view bytes, std::string* out) const {
  for (char byte : bytes) *out += characters_[static_cast<unsigned char>(byte)];
}

int ByteLevelAlphabet::byte_of(char32_t code_point) const {
  return code_point < bytes_.size() ? bytes_[code_point] : -1;
}

}  // namespace gopd::tokenizer::hf
