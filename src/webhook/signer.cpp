// Standard Webhooks v1 signatures: base64(HMAC-SHA256(key, "id.timestamp.body")),
// the key being the base64-decoded part of a `whsec_` secret.
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>
#include <optional>

#include "voxq/errors.hpp"
#include "voxq/webhook.hpp"
#include "webhook/encoding.hpp"

namespace voxq {

namespace {

constexpr std::size_t kMinSecretBytes = 24;

// The HMAC key of a `whsec_` secret: the bytes its base64 part stands for.
std::optional<std::string> secret_key(const std::string& secret) {
    constexpr std::string_view prefix = "whsec_";

    if (secret.rfind(prefix, 0) != 0) return std::nullopt;
    return webhook::base64_decode(std::string_view(secret).substr(prefix.size()));
}

}  // namespace

void check_webhook_secret(const std::string& secret, std::string_view variable) {
    const std::string name(variable);
    if (secret.rfind("whsec_", 0) != 0)
        throw ConfigError(name + ": a secret must look like whsec_<base64>");
    const std::optional<std::string> key = secret_key(secret);
    if (!key) throw ConfigError(name + ": the part after whsec_ is not base64");
    if (key->size() < kMinSecretBytes)
        throw ConfigError(name + ": a secret of " + std::to_string(key->size()) +
                          " bytes is too short (Standard Webhooks asks for at least " +
                          std::to_string(kMinSecretBytes) + "; voxq secret makes one of 32)");
}

std::string sign_webhook(const std::vector<std::string>& secrets, const std::string& message_id,
                         std::int64_t timestamp, const std::string& body) {
    const std::string prefix = message_id + "." + std::to_string(timestamp) + ".";
    std::string header;
    for (const std::string& secret : secrets) {
        const std::optional<std::string> key = secret_key(secret);
        if (!key || key->empty())
            throw ConfigError("VOXQ_WEBHOOK_SECRET: a secret must look like whsec_<base64>");
        // Over prefix + body without copying the body (it may be megabytes).
        const webhook::Sha256 mac = webhook::hmac_sha256(*key, {prefix, body});
        if (!header.empty()) header += ' ';
        header += "v1," + webhook::base64_encode(webhook::view(mac));
    }
    return header;
}

std::string random_webhook_secret() {
    unsigned char key[32];
    if (RAND_bytes(key, sizeof key) != 1) throw QueueError("no random bytes for a webhook secret");
    return "whsec_" +
           webhook::base64_encode(std::string_view(reinterpret_cast<char*>(key), sizeof key));
}

std::string webhook_signature_problem(const std::vector<std::string>& secrets,
                                      const std::string& message_id, const std::string& timestamp,
                                      const std::string& body, const std::string& signature_header,
                                      std::int64_t now, double tolerance_seconds) {
    if (message_id.empty() || timestamp.empty() || signature_header.empty()) {
        return "missing webhook-id, webhook-timestamp or webhook-signature";
    }
    // The timestamp as sent is what was signed: only a canonical decimal (no sign,
    // no leading zero, no spaces) can match the signature computed over it.
    const bool digits = std::all_of(timestamp.begin(), timestamp.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || timestamp.size() > 18 || (timestamp.size() > 1 && timestamp[0] == '0'))
        return "webhook-timestamp is not a Unix time in seconds";
    std::int64_t ts = 0;
    std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
    if (std::abs(static_cast<double>(now) - static_cast<double>(ts)) > tolerance_seconds) {
        return "webhook-timestamp is outside the tolerance (replayed or clock skew)";
    }
    // Any v1 entry of the header may match any of our secrets (rotation).
    for (const std::string& secret : secrets) {
        const std::string expected = sign_webhook({secret}, message_id, ts, body);
        for (std::size_t pos = 0; pos < signature_header.size();) {
            const std::size_t end = signature_header.find(' ', pos);
            const std::string entry = signature_header.substr(pos, end - pos);
            if (entry.size() == expected.size() &&
                CRYPTO_memcmp(entry.data(), expected.data(), expected.size()) == 0) {
                return {};
            }
            if (end == std::string::npos) break;
            pos = end + 1;
        }
    }
    return "no signature matches";
}

}  // namespace voxq
