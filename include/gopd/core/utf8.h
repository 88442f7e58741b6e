// UTF-8 validation for text that enters gopd from files: invalid bytes are reported with
// their position, never passed on to tokenizers or verifiers.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gopd::core {

// Returns the byte offset of the first invalid UTF-8 sequence in `text` (overlong forms,
// surrogates and code points above U+10FFFF are invalid), or nullopt when all of it is valid.
std::optional<int64_t> find_invalid_utf8(std::string_view text);

}  // namespace gopd::core
