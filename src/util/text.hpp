// Text from outside made safe to store, serialize and print (SPEC §12): valid
// UTF-8 everywhere, cuts at character boundaries, control characters escaped
// for terminals, credentials taken out of URLs.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace voxq {

[[nodiscard]] bool is_valid_utf8(std::string_view text);
// Bytes of the valid UTF-8 character `text` starts with; 0 if it is not one.
[[nodiscard]] std::size_t utf8_sequence_length(std::string_view text) noexcept;
// `text` with every invalid byte sequence replaced by U+FFFD.
[[nodiscard]] std::string to_valid_utf8(std::string_view text);
// Valid UTF-8 of at most `max_bytes`, cut at a character boundary ("…" marks a
// cut when there is room for it).
[[nodiscard]] std::string truncate_utf8(std::string_view text, std::size_t max_bytes);
// For a terminal: control characters (C0, DEL, C1, and so ESC) as \xNN or
// \uNNNN, "\n" as "\\n"; invalid UTF-8 replaced.
[[nodiscard]] std::string escape_for_terminal(std::string_view text);
// A URL or libpq connection string without its credentials: "user:pass@" in
// any URL becomes "user:***@", and password=... / passwd / sslpassword /
// X-Amz-Signature / api_key / token parameters are masked.
[[nodiscard]] std::string redact_credentials(std::string_view text);
// The media type of a Content-Type value, lower-cased, without parameters:
// "Audio/PCM; rate=24000" -> "audio/pcm".
[[nodiscard]] std::string media_type(std::string_view content_type);
// A number for people and messages: the shortest decimal that reads back as
// `v`, never in exponent form ("30", "0.25", "1000000").
[[nodiscard]] std::string format_number(double v);

}  // namespace voxq
