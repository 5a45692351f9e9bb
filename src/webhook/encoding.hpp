// Byte encodings deliveries use, on OpenSSL: base64 (standard and URL-safe) and
// SHA-256. One place, so the signer, the event builder, the receiver and the sink
// agree on padding and alphabet.
#pragma once

#include <array>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace voxq::webhook {

// Whether `c` is one of standard base64's 64 characters ('=' is not): a table,
// as receivers check half a megabyte of them per delivery.
inline constexpr std::array<bool, 256> kBase64Alphabet = [] {
    std::array<bool, 256> in{};
    for (int c = 'A'; c <= 'Z'; ++c) in[static_cast<std::size_t>(c)] = true;
    for (int c = 'a'; c <= 'z'; ++c) in[static_cast<std::size_t>(c)] = true;
    for (int c = '0'; c <= '9'; ++c) in[static_cast<std::size_t>(c)] = true;
    in['+'] = in['/'] = true;
    return in;
}();
[[nodiscard]] inline bool in_base64_alphabet(char c) noexcept {
    return kBase64Alphabet[static_cast<unsigned char>(c)];
}

// Standard base64 with '=' padding (RFC 4648 §4).
[[nodiscard]] std::string base64_encode(std::string_view bytes);
// Appends base64_encode(bytes) to `out` without an intermediate copy.
void base64_append(std::string& out, std::string_view bytes);
// The bytes of standard padded base64, or nullopt if `text` is not exactly that
// (a wrong length, a character outside the alphabet, misplaced padding).
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);
// URL-safe base64 without padding (RFC 4648 §5): [A-Za-z0-9_-] only.
[[nodiscard]] std::string base64url_encode(std::string_view bytes);

using Sha256 = std::array<unsigned char, 32>;
[[nodiscard]] Sha256 sha256(std::string_view bytes);
[[nodiscard]] std::string sha256_hex(std::string_view bytes);
[[nodiscard]] std::string hex(std::string_view bytes);
// HMAC-SHA256 of the concatenation of `parts` (no copy of them is made).
[[nodiscard]] Sha256 hmac_sha256(std::string_view key,
                                 std::initializer_list<std::string_view> parts);
[[nodiscard]] inline std::string_view view(const Sha256& digest) {
    return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

}  // namespace voxq::webhook
