// Object storage for delivered audio (SPEC §7), on any S3-compatible store:
// uploads signed by libcurl's built-in SigV4 (CURLOPT_AWS_SIGV4), downloads
// linked with presigned GET URLs signed here (AWS's query-string SigV4: no
// library on Debian does it), and the store's answers classified as webhook
// answers are.
#include <curl/curl.h>

#include <cmath>
#include <ctime>

#include "util/curl.hpp"
#include "util/env.hpp"
#include "util/text.hpp"
#include "voxq/errors.hpp"
#include "voxq/version.hpp"
#include "voxq/webhook.hpp"
#include "webhook/encoding.hpp"

namespace voxq {

namespace {

constexpr std::int64_t kMaxUrlTtl = std::int64_t{7} * 24 * 3600;  // SigV4's own limit
constexpr std::size_t kMaxErrorBody = std::size_t{64} * 1024;

// RFC 3986 unreserved characters stay; every other byte is %XX (upper case), as
// SigV4 canonicalization wants. '/' is kept only where asked (between segments).
std::string uri_encode(std::string_view text, bool keep_slash) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (char c : text) {
        const auto b = static_cast<unsigned char>(c);
        if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
            b == '-' || b == '_' || b == '.' || b == '~' || (keep_slash && b == '/')) {
            out += c;
        } else {
            out += '%';
            out += kHex[b >> 4U];
            out += kHex[b & 15U];
        }
    }
    return out;
}

// "20261130T181500Z" and "20261130" for Unix time `t`.
std::pair<std::string, std::string> amz_dates(std::int64_t t) {
    const auto when = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&when, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    return {stamp, std::string(stamp, 8)};
}

// The text of <Name>…</Name> in an S3 error document, or "".
std::string xml_element(const std::string& xml, const std::string& name) {
    const std::string open = "<" + name + ">";
    const std::size_t start = xml.find(open);
    if (start == std::string::npos) return {};
    const std::size_t end = xml.find("</" + name + ">", start);
    if (end == std::string::npos) return {};
    return truncate_utf8(xml.substr(start + open.size(), end - start - open.size()), 300);
}

std::size_t keep_error_body(char* data, std::size_t size, std::size_t n, void* user) {
    auto* body = static_cast<std::string*>(user);
    const std::size_t bytes = size * n;
    if (body->size() < kMaxErrorBody)
        body->append(data, std::min(bytes, kMaxErrorBody - body->size()));
    return bytes;
}

struct Target {
    std::string url;   // of the object
    std::string host;  // as the Host header says it (with a non-default port)
    std::string path;  // canonical URI
};

Target target_of(const StorageConfig& c, const std::string& key) {
    const std::string encoded_key = uri_encode(key, true);
    if (c.endpoint.empty()) {  // AWS, virtual-hosted (us-east-1 has the global name)
        const std::string host =
            c.bucket + (c.region == "us-east-1" ? ".s3" : ".s3." + c.region) + ".amazonaws.com";
        return {"https://" + host + "/" + encoded_key, host, "/" + encoded_key};
    }
    const std::size_t scheme_end = c.endpoint.find("://");
    const std::string host = c.endpoint.substr(scheme_end + 3);
    const std::string path = "/" + uri_encode(c.bucket, false) + "/" + encoded_key;
    return {c.endpoint + path, host, path};
}

}  // namespace

std::optional<StorageConfig> StorageConfig::from_env(std::optional<std::string> url) {
    const env::Reader vars;
    if (!url) url = vars.text("VOXQ_STORAGE_URL");
    if (!url || url->empty()) return std::nullopt;
    StorageConfig c;
    constexpr std::string_view scheme = "s3://";
    if (url->rfind(scheme, 0) != 0 || url->size() == scheme.size())
        throw ConfigError("VOXQ_STORAGE_URL: " + env::quoted(*url) +
                          " is not s3://BUCKET[/PREFIX]");
    const std::string rest = url->substr(scheme.size());
    const std::size_t slash = rest.find('/');
    c.bucket = rest.substr(0, slash);
    if (slash != std::string::npos) c.prefix = rest.substr(slash + 1);
    while (!c.prefix.empty() && c.prefix.back() == '/') c.prefix.pop_back();
    // Bucket names are DNS labels (S3's rules): 3..63 of [a-z0-9.-].
    const bool bucket_ok =
        c.bucket.size() >= 3 && c.bucket.size() <= 63 &&
        c.bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") == std::string::npos;
    if (!bucket_ok)
        throw ConfigError("VOXQ_STORAGE_URL: the bucket " + env::quoted(c.bucket) +
                          " is not 3..63 of a-z, 0-9, '.' and '-'");
    if (c.prefix.find("//") != std::string::npos || c.prefix.rfind('/', 0) == 0 ||
        c.prefix.size() > 512 || !is_valid_utf8(c.prefix))
        throw ConfigError("VOXQ_STORAGE_URL: the prefix " + env::quoted(c.prefix) +
                          " has empty segments or is longer than 512 bytes");
    if (const auto endpoint = vars.text("VOXQ_S3_ENDPOINT"); endpoint && !endpoint->empty()) {
        c.endpoint = *endpoint;
        while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
        const bool scheme_ok =
            c.endpoint.rfind("http://", 0) == 0 || c.endpoint.rfind("https://", 0) == 0;
        const std::size_t host_at = c.endpoint.find("://") + 3;
        if (!scheme_ok || c.endpoint.size() <= host_at ||
            c.endpoint.find_first_of("/?#@ ", host_at) != std::string::npos)
            throw ConfigError("VOXQ_S3_ENDPOINT: " + env::quoted(*endpoint) +
                              " is not http(s)://host[:port]");
    }
    if (const auto region = vars.text("VOXQ_S3_REGION"); region && !region->empty()) {
        if (region->empty() || region->size() > 64 ||
            region->find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
            throw ConfigError("VOXQ_S3_REGION: " + env::quoted(*region) + " is not a region name");
        c.region = *region;
    }
    c.access_key_id = vars.text("AWS_ACCESS_KEY_ID").value_or("");
    c.secret_access_key = vars.text("AWS_SECRET_ACCESS_KEY").value_or("");
    c.session_token = vars.text("AWS_SESSION_TOKEN").value_or("");
    if (c.access_key_id.empty() || c.secret_access_key.empty())
        throw ConfigError(
            "VOXQ_STORAGE_URL needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to be set");
    if (c.access_key_id.find_first_of(":/ \r\n") != std::string::npos ||
        c.session_token.find_first_of("\r\n") != std::string::npos)
        throw ConfigError("AWS_ACCESS_KEY_ID or AWS_SESSION_TOKEN holds a character no key has");
    c.url_ttl = vars.integer("VOXQ_STORAGE_URL_TTL", 1, kMaxUrlTtl).value_or(c.url_ttl);
    const env::Range seconds{0, 3600, true, " seconds"};
    c.connect_timeout =
        vars.number("VOXQ_WEBHOOK_CONNECT_TIMEOUT", seconds).value_or(c.connect_timeout);
    c.total_timeout = vars.number("VOXQ_WEBHOOK_TIMEOUT", seconds).value_or(c.total_timeout);
    return c;
}

std::string storage_key(const StorageConfig& config, const Task& task, std::size_t item,
                        std::string_view extension) {
    std::string key = config.prefix.empty() ? std::string() : config.prefix + "/";
    key += task.id + "/" + std::to_string(item) + "." + std::string(extension);
    return key;
}

ObjectStorage::ObjectStorage(StorageConfig config)
    : config_(std::move(config)), connections_(std::make_unique<CurlPool>()) {}

ObjectStorage::~ObjectStorage() = default;

WebhookOutcome ObjectStorage::put(const std::string& key, const std::string& bytes,
                                  const std::string& content_type) const {
    WebhookOutcome out;
    const CurlPool::Lease curl = connections_->take();
    if (curl.get() == nullptr) {
        out.message = "storage: curl_easy_init failed";
        return out;
    }
    CURL* c = curl.get();
    const Target target = target_of(config_, key);
    curl_slist* raw = nullptr;
    auto add = [&raw](const std::string& header) { raw = curl_slist_append(raw, header.c_str()); };
    add("Content-Type: " + content_type);
    // No "Expect:" line to turn 100-continue off: libcurl 7.88 would sign the
    // removed header, and the store would refuse the signature.
    // S3 requires the payload's hash; libcurl signs the header when it is given
    // (and, before 8.x, would not compute it for S3 itself).
    add("x-amz-content-sha256: " + webhook::sha256_hex(bytes));
    if (!config_.session_token.empty()) add("x-amz-security-token: " + config_.session_token);
    const CurlHeaders headers(raw);
    const std::string sigv4 = "aws:amz:" + config_.region + ":s3";
    const std::string user = config_.access_key_id + ":" + config_.secret_access_key;
    const std::string agent = std::string("voxq/") + version();
    std::string response;
    char error[CURL_ERROR_SIZE] = {};
    set_delivery_transfer(c, target.url, bytes, config_.connect_timeout, config_.total_timeout,
                          error);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(c, CURLOPT_USERPWD, user.c_str());
    // Not in the header list: libcurl signs every header given there, and an
    // intermediary that rewrites User-Agent would break the signature.
    curl_easy_setopt(c, CURLOPT_USERAGENT, agent.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &keep_error_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    out.http_status = status;
    if (rc != CURLE_OK) {
        out.kind = WebhookOutcome::Kind::Transient;
        out.message = std::string("storage not reached: ") +
                      (error[0] != '\0' ? error : curl_easy_strerror(rc));
        return out;
    }
    if (status >= 200 && status < 300) {
        out.kind = WebhookOutcome::Kind::Delivered;
        out.message = "stored";
        return out;
    }
    const bool transient = status == 408 || status == 429 || status >= 500;
    out.kind = transient ? WebhookOutcome::Kind::Transient : WebhookOutcome::Kind::Permanent;
    const std::string code = xml_element(response, "Code");
    const std::string message = xml_element(response, "Message");
    out.message = "storage refused the upload to s3://" + config_.bucket + "/" + key + ": HTTP " +
                  std::to_string(status) + (code.empty() ? "" : " " + code) +
                  (message.empty() ? "" : " (" + message + ")");
    return out;
}

AudioLink ObjectStorage::presigned_get(const std::string& key, std::int64_t now) const {
    const Target target = target_of(config_, key);
    const auto [stamp, date] = amz_dates(now);
    const std::string scope = date + "/" + config_.region + "/s3/aws4_request";
    // The query, its names in byte order as SigV4 canonicalization wants.
    std::string query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" +
                        uri_encode(config_.access_key_id + "/" + scope, false) +
                        "&X-Amz-Date=" + stamp +
                        "&X-Amz-Expires=" + std::to_string(config_.url_ttl);
    if (!config_.session_token.empty())
        query += "&X-Amz-Security-Token=" + uri_encode(config_.session_token, false);
    query += "&X-Amz-SignedHeaders=host";
    const std::string canonical = "GET\n" + target.path + "\n" + query + "\nhost:" + target.host +
                                  "\n\nhost\nUNSIGNED-PAYLOAD";
    const std::string to_sign =
        "AWS4-HMAC-SHA256\n" + stamp + "\n" + scope + "\n" + webhook::sha256_hex(canonical);
    const webhook::Sha256 k_date = webhook::hmac_sha256("AWS4" + config_.secret_access_key, {date});
    const webhook::Sha256 k_region = webhook::hmac_sha256(webhook::view(k_date), {config_.region});
    const webhook::Sha256 k_service = webhook::hmac_sha256(webhook::view(k_region), {"s3"});
    const webhook::Sha256 k_signing =
        webhook::hmac_sha256(webhook::view(k_service), {"aws4_request"});
    const std::string signature =
        webhook::hex(webhook::view(webhook::hmac_sha256(webhook::view(k_signing), {to_sign})));
    return {target.url + "?" + query + "&X-Amz-Signature=" + signature, now + config_.url_ttl};
}

}  // namespace voxq
