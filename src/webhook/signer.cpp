// Standard Webhooks v1 signatures: base64(HMAC-SHA256(key, "id.timestamp.body")),
// the key being the base64-decoded part of a `whsec_` secret.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "voxq/errors.hpp"
#include "voxq/webhook.hpp"

namespace voxq {

namespace {

std::vector<unsigned char> secret_key(const std::string& secret) {
    const std::string prefix = "whsec_";
    if (secret.rfind(prefix, 0) != 0 || secret.size() == prefix.size()) {
        throw ConfigError("VOXQ_WEBHOOK_SECRET: a secret must look like whsec_<base64>");
    }
    const std::string b64 = secret.substr(prefix.size());
    if (b64.size() % 4 != 0) {
        throw ConfigError("VOXQ_WEBHOOK_SECRET: the part after whsec_ is not base64");
    }
    std::vector<unsigned char> key(b64.size() / 4 * 3);
    const int n = EVP_DecodeBlock(key.data(), reinterpret_cast<const unsigned char*>(b64.data()),
                                  static_cast<int>(b64.size()));
    if (n < 0) throw ConfigError("VOXQ_WEBHOOK_SECRET: the part after whsec_ is not base64");
    // EVP_DecodeBlock counts '=' padding as output bytes: take it back off.
    std::size_t len = static_cast<std::size_t>(n);
    for (auto it = b64.rbegin(); it != b64.rend() && *it == '='; ++it) --len;
    key.resize(len);
    return key;
}

}  // namespace

std::string sign_webhook(const std::vector<std::string>& secrets, const std::string& message_id,
                         std::int64_t timestamp, const std::string& body) {
    const std::string content = message_id + "." + std::to_string(timestamp) + "." + body;
    std::string header;
    for (const std::string& secret : secrets) {
        const std::vector<unsigned char> key = secret_key(secret);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &mac_len);
        std::string b64(4 * ((mac_len + 2) / 3) + 1, '\0');
        const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), mac,
                                      static_cast<int>(mac_len));
        b64.resize(static_cast<std::size_t>(n));
        if (!header.empty()) header += ' ';
        header += "v1," + b64;
    }
    return header;
}

std::string random_webhook_secret() {
    unsigned char key[32];
    if (RAND_bytes(key, sizeof key) != 1) throw QueueError("no random bytes for a webhook secret");
    std::string b64(4 * ((sizeof key + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), key, sizeof key);
    b64.resize(static_cast<std::size_t>(n));
    return "whsec_" + b64;
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
