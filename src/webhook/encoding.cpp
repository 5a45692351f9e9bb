#include "webhook/encoding.hpp"

#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <algorithm>
#include <memory>

#include "voxq/errors.hpp"

namespace voxq::webhook {

void base64_append(std::string& out, std::string_view bytes) {
    const std::size_t start = out.size();
    // EVP_EncodeBlock takes an int length: encode in slices of whole triples.
    constexpr std::size_t kSlice = std::size_t{3} << 20;
    out.resize(start + 4 * ((bytes.size() + 2) / 3) + 1);
    std::size_t at = start;
    for (std::size_t done = 0, n = 0; done < bytes.size(); done += n) {
        n = std::min(kSlice, bytes.size() - done);
        at += static_cast<std::size_t>(EVP_EncodeBlock(
            reinterpret_cast<unsigned char*>(out.data() + at),
            reinterpret_cast<const unsigned char*>(bytes.data() + done), static_cast<int>(n)));
    }
    out.resize(at);
}

std::string base64_encode(std::string_view bytes) {
    std::string out;
    base64_append(out, bytes);
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::size_t padding = 0;
    if (!text.empty() && text.back() == '=')
        padding = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
    if (!std::all_of(text.begin(), text.end() - static_cast<std::ptrdiff_t>(padding),
                     in_base64_alphabet))
        return std::nullopt;
    std::string out(text.size() / 4 * 3, '\0');
    constexpr std::size_t kSlice = std::size_t{4} << 20;  // whole quads
    std::size_t at = 0;
    for (std::size_t done = 0, n = 0; done < text.size(); done += n) {
        n = std::min(kSlice, text.size() - done);
        const int got = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data() + at),
                                        reinterpret_cast<const unsigned char*>(text.data() + done),
                                        static_cast<int>(n));
        if (got < 0) return std::nullopt;
        at += static_cast<std::size_t>(got);
    }
    // EVP_DecodeBlock counts padding as output bytes: take them back off.
    out.resize(at - padding);
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    std::string out = base64_encode(bytes);
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char& c : out) {
        if (c == '+') c = '-';
        if (c == '/') c = '_';
    }
    return out;
}

Sha256 sha256(std::string_view bytes) {
    Sha256 digest{};
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest.data());
    return digest;
}

std::string hex(std::string_view bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out += kHex[b >> 4U];
        out += kHex[b & 15U];
    }
    return out;
}

std::string sha256_hex(std::string_view bytes) {
    return hex(view(sha256(bytes)));
}

Sha256 hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts) {
    static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);  // thread-safe
    std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(
        hmac != nullptr ? EVP_MAC_CTX_new(hmac) : nullptr, &EVP_MAC_CTX_free);
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                                 OSSL_PARAM_construct_end()};
    bool ok = ctx && EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()),
                                  key.size(), params) == 1;
    for (std::string_view part : parts) {
        ok = ok && EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(part.data()),
                                  part.size()) == 1;
    }
    Sha256 mac{};
    std::size_t mac_len = 0;
    if (!ok || EVP_MAC_final(ctx.get(), mac.data(), &mac_len, mac.size()) != 1 || mac_len != 32)
        throw QueueError("HMAC-SHA256 failed (OpenSSL)");
    return mac;
}

}  // namespace voxq::webhook
