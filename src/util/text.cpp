#include "util/text.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>

namespace voxq {

namespace {

// Length of the valid UTF-8 sequence at the start of `s`, or 0 if it is not one.
std::size_t valid_sequence(std::string_view s) noexcept {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1FU;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0FU;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07U;
    } else {
        return 0;
    }
    if (s.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i) {
        if ((b(i) & 0xC0U) != 0x80U) return 0;
        cp = (cp << 6U) | (b(i) & 0x3FU);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

bool key_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
}

bool secret_key(std::string_view key) {
    static constexpr std::array<std::string_view, 11> kKeys = {"password",
                                                               "passwd",
                                                               "sslpassword",
                                                               "pass",
                                                               "token",
                                                               "access_token",
                                                               "api_key",
                                                               "apikey",
                                                               "secret",
                                                               "x-amz-signature",
                                                               "x-amz-security-token"};
    for (std::string_view k : kKeys) {
        if (k.size() != key.size()) continue;
        bool same = true;
        for (std::size_t i = 0; i < k.size() && same; ++i)
            same = std::tolower(static_cast<unsigned char>(key[i])) == k[i];
        if (same) return true;
    }
    return false;
}

bool ends_value(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '&' || c == '"' || c == ';' ||
           c == ',' || c == '#';
}

}  // namespace

std::size_t utf8_sequence_length(std::string_view text) noexcept {
    return text.empty() ? 0 : valid_sequence(text);
}

bool is_valid_utf8(std::string_view text) {
    while (!text.empty()) {
        const std::size_t n = valid_sequence(text);
        if (n == 0) return false;
        text.remove_prefix(n);
    }
    return true;
}

std::string to_valid_utf8(std::string_view text) {
    if (is_valid_utf8(text)) return std::string(text);
    std::string out;
    out.reserve(text.size() + 8);
    while (!text.empty()) {
        const std::size_t n = valid_sequence(text);
        if (n == 0) {
            out += kReplacement;
            text.remove_prefix(1);
        } else {
            out.append(text.substr(0, n));
            text.remove_prefix(n);
        }
    }
    return out;
}

std::string truncate_utf8(std::string_view text, std::size_t max_bytes) {
    std::string valid = to_valid_utf8(text);
    if (valid.size() <= max_bytes) return valid;
    constexpr std::string_view kEllipsis = "\xE2\x80\xA6";
    const bool mark = max_bytes >= kEllipsis.size() + 1;
    std::size_t cut = mark ? max_bytes - kEllipsis.size() : max_bytes;
    // Back up to the start of a character (never inside a continuation byte).
    while (cut > 0 && (static_cast<unsigned char>(valid[cut]) & 0xC0U) == 0x80U) --cut;
    valid.resize(cut);
    if (mark) valid += kEllipsis;
    return valid;
}

std::string escape_for_terminal(std::string_view text) {
    const std::string valid = to_valid_utf8(text);
    std::string out;
    out.reserve(valid.size());
    std::string_view rest = valid;
    while (!rest.empty()) {
        const std::size_t n = valid_sequence(rest);
        const auto c = static_cast<unsigned char>(rest[0]);
        char buf[16];
        if (n == 1 && (c < 0x20 || c == 0x7F)) {
            if (c == '\n') {
                out += "\\n";
            } else if (c == '\t') {
                out += "\\t";
            } else if (c == '\r') {
                out += "\\r";
            } else {
                std::snprintf(buf, sizeof buf, "\\x%02X", c);
                out += buf;
            }
        } else if (n == 2 && c == 0xC2 && static_cast<unsigned char>(rest[1]) < 0xA0) {
            std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned char>(rest[1]));
            out += buf;  // C1 controls (U+0080..U+009F), e.g. CSI
        } else {
            out.append(rest.substr(0, n));
        }
        rest.remove_prefix(n);
    }
    return out;
}

std::string redact_credentials(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        // user:password@ after a scheme
        if (text.compare(i, 3, "://") == 0) {
            out += "://";
            i += 3;
            // A password may hold '/', '?' or '#': the userinfo ends at the last '@'
            // before whitespace or a quote.
            std::size_t far = i;
            while (far < text.size() && text[far] != ' ' && text[far] != '"' && text[far] != '\'' &&
                   text[far] != '\n' && text[far] != '>')
                ++far;
            const std::size_t at = text.substr(i, far - i).rfind('@');
            if (at != std::string_view::npos) {
                const std::string_view userinfo = text.substr(i, at);
                const std::size_t colon = userinfo.find(':');
                out += colon == std::string_view::npos
                           ? std::string("***")
                           : std::string(userinfo.substr(0, colon)) + ":***";
                i += at;  // the '@' is copied next
            }
            continue;
        }
        // key=value for secret keys (libpq keyword strings, query parameters)
        if (text[i] == '=' && i > 0) {
            std::size_t k = i;
            while (k > 0 && key_char(text[k - 1])) --k;
            if (secret_key(text.substr(k, i - k))) {
                out += "=***";
                ++i;
                if (i < text.size() && text[i] == '\'') {
                    ++i;
                    while (i < text.size() && text[i] != '\'') i += (text[i] == '\\') ? 2 : 1;
                    if (i < text.size()) ++i;
                } else {
                    while (i < text.size() && !ends_value(text[i])) ++i;
                }
                continue;
            }
        }
        out += text[i];
        ++i;
    }
    return out;
}

std::string media_type(std::string_view content_type) {
    std::string out(content_type.substr(0, content_type.find(';')));
    while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string format_number(double v) {
    // Room for any finite double in fixed notation's shortest round trip.
    std::array<char, 400> buffer{};
    const auto [end, ec] =
        std::to_chars(buffer.data(), buffer.data() + buffer.size(), v, std::chars_format::fixed);
    if (ec != std::errc()) return std::to_string(v);
    return {buffer.data(), end};
}

}  // namespace voxq
