// Webhook POSTs with libcurl. The one place where CURLcode and HTTP status become
// a WebhookOutcome (classify), and where the address policy is applied: on the
// address curl is about to connect to (CURLOPT_OPENSOCKETFUNCTION), after DNS, so
// a name that resolves (or re-resolves) to an internal address is refused.
#include <curl/curl.h>
#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <memory>
#include <mutex>

#include "util/curl.hpp"
#include "util/env.hpp"
#include "voxq/audio_format.hpp"
#include "voxq/errors.hpp"
#include "voxq/version.hpp"
#include "voxq/webhook.hpp"

namespace voxq {

namespace {

constexpr std::size_t kMaxResponseBytes = 4096;  // read and dropped: never echoed

// What one transfer learns along the way.
struct Transfer {
    const std::vector<IpNetwork>* allow_nets = nullptr;
    std::string refused;                // why the address was refused, if it was
    std::optional<double> retry_after;  // seconds
    std::size_t response_bytes = 0;
};

curl_socket_t open_socket(void* data, curlsocktype, curl_sockaddr* address) {
    auto* t = static_cast<Transfer*>(data);
    std::vector<std::uint8_t> ip;
    if (address->family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&address->addr);
        const auto* b = reinterpret_cast<const std::uint8_t*>(&in->sin_addr);
        ip.assign(b, b + 4);
    } else if (address->family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address->addr);
        const auto* b = reinterpret_cast<const std::uint8_t*>(&in6->sin6_addr);
        ip.assign(b, b + 16);
    } else {
        t->refused = "not an IP address";
        return CURL_SOCKET_BAD;
    }
    if (std::string why = refused_address_reason(ip, *t->allow_nets); !why.empty()) {
        t->refused = why;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

std::size_t drop_body(char*, std::size_t size, std::size_t n, void* data) {
    auto* t = static_cast<Transfer*>(data);
    t->response_bytes += size * n;
    // Stop reading a receiver that sends too much; the status is already known.
    return t->response_bytes > kMaxResponseBytes * 256 ? 0 : size * n;
}

// Retry-After: delta-seconds or an HTTP-date.
std::size_t read_header(char* line, std::size_t size, std::size_t n, void* data) {
    // A C callback: nothing may be thrown through libcurl.
    try {
        auto* t = static_cast<Transfer*>(data);
        std::string_view h(line, size * n);
        constexpr std::string_view name = "retry-after:";
        if (h.size() > name.size()) {
            bool same = true;
            for (std::size_t i = 0; i < name.size() && same; ++i)
                same = std::tolower(static_cast<unsigned char>(h[i])) == name[i];
            if (same) t->retry_after = parse_retry_after(h.substr(name.size()), std::time(nullptr));
        }
    } catch (...) {
    }
    return size * n;
}

WebhookOutcome classify(CURLcode rc, long status, const Transfer& t, bool request_sent,
                        const char* curl_message) {
    WebhookOutcome out;
    out.http_status = status;
    out.retry_after = t.retry_after;
    if (!t.refused.empty()) {
        out.kind = WebhookOutcome::Kind::Refused;
        out.message = "refused to connect: the address is " + t.refused +
                      " (allow it with VOXQ_WEBHOOK_ALLOW_NETS)";
        return out;
    }
    // A receiver that answered but kept sending a body past our cap still answered.
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && status > 0)) {
        if (status >= 200 && status < 300) {
            out.kind = WebhookOutcome::Kind::Delivered;
            out.message = "HTTP " + std::to_string(status);
        } else if (status == 408 || status == 429 || status >= 500) {
            out.kind = WebhookOutcome::Kind::Transient;
            out.message = "HTTP " + std::to_string(status) + " from the webhook";
        } else {
            out.kind = WebhookOutcome::Kind::Permanent;
            out.message = "HTTP " + std::to_string(status) + " from the webhook" +
                          (status >= 300 && status < 400 ? " (redirects are not followed)" : "");
        }
        return out;
    }
    out.kind = WebhookOutcome::Kind::Transient;
    // Once the request went out, a timeout or a dropped connection leaves it
    // unknown whether the receiver acted on it.
    out.in_doubt = request_sent && (rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING ||
                                    rc == CURLE_RECV_ERROR || rc == CURLE_PARTIAL_FILE);
    out.message = std::string("webhook not reached: ") + curl_message;
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT) {
        out.kind = WebhookOutcome::Kind::Permanent;
    }
    return out;
}

}  // namespace

WebhookSender::WebhookSender(WebhookConfig config)
    : config_(std::move(config)), connections_(std::make_unique<CurlPool>()) {
    if (config_.storage) storage_ = std::make_unique<ObjectStorage>(*config_.storage);
}

WebhookSender::~WebhookSender() = default;

WebhookOutcome WebhookSender::send(const WebhookRequest& request, std::int64_t timestamp) const {
    const CurlPool::Lease curl = connections_->take();
    if (curl.get() == nullptr)
        return classify(CURLE_FAILED_INIT, 0, {}, false, "curl_easy_init failed");
    CURL* c = curl.get();
    Transfer transfer;
    transfer.allow_nets = &config_.allow_nets;

    curl_slist* raw = nullptr;
    auto add = [&raw](const std::string& header) { raw = curl_slist_append(raw, header.c_str()); };
    add("Content-Type: " + request.content_type);
    add("Expect:");  // no 100-continue round trip
    add(std::string("User-Agent: voxq/") + version());
    add("webhook-id: " + request.message_id);
    add("webhook-timestamp: " + std::to_string(timestamp));
    if (!config_.secrets.empty()) {
        add("webhook-signature: " +
            sign_webhook(config_.secrets, request.message_id, timestamp, request.body));
    }
    for (const auto& [name, value] : request.headers) {
        std::string line = name;
        line += ": ";
        line += value;
        add(line);
    }
    const CurlHeaders headers(raw);

    char error[CURL_ERROR_SIZE] = {};
    set_delivery_transfer(c, request.url, request.body, config_.connect_timeout,
                          config_.total_timeout, error);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, &open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &transfer);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &drop_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &read_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &transfer);

    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t sent = 0;
    curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent);
    return classify(rc, status, transfer, sent > 0,
                    error[0] != '\0' ? error : curl_easy_strerror(rc));
}

std::optional<double> parse_retry_after(std::string_view value, std::int64_t now) {
    constexpr double kMax = 1e9;
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ' ||
                              value.back() == '\t'))
        value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        double seconds = 0;
        for (char c : value) {
            seconds = seconds * 10 + (c - '0');
            if (seconds > kMax) return kMax;  // saturates: 400 digits are "very long"
        }
        return seconds;
    }
    if (value.size() > 64) return std::nullopt;  // no HTTP date is longer
    const std::string text(value);
    const time_t when = curl_getdate(text.c_str(), nullptr);
    if (when <= 0) return std::nullopt;
    return std::clamp(static_cast<double>(when) - static_cast<double>(now), 0.0, kMax);
}

WebhookConfig WebhookConfig::from_env() {
    WebhookConfig config;
    const env::Reader vars;
    for (const std::string& secret : vars.list("VOXQ_WEBHOOK_SECRET")) {
        check_webhook_secret(secret, "VOXQ_WEBHOOK_SECRET");
        config.secrets.push_back(secret);
    }
    if (const auto payload = vars.text("VOXQ_WEBHOOK_PAYLOAD"); payload && !payload->empty()) {
        if (*payload == "json") {
            config.payload = WebhookPayload::Json;
        } else if (*payload == "raw") {
            config.payload = WebhookPayload::Raw;
        } else {
            throw ConfigError("VOXQ_WEBHOOK_PAYLOAD: " + env::quoted(*payload) +
                              " is not json or raw");
        }
    }
    for (const std::string& net : vars.list("VOXQ_WEBHOOK_ALLOW_NETS")) {
        try {
            config.allow_nets.push_back(IpNetwork::parse(net));
        } catch (const ConfigError& e) {
            throw ConfigError(std::string("VOXQ_WEBHOOK_ALLOW_NETS: ") + e.what());
        }
    }
    const env::Range seconds{0, 3600, true, " seconds"};
    config.connect_timeout =
        vars.number("VOXQ_WEBHOOK_CONNECT_TIMEOUT", seconds).value_or(config.connect_timeout);
    config.total_timeout =
        vars.number("VOXQ_WEBHOOK_TIMEOUT", seconds).value_or(config.total_timeout);
    config.storage = StorageConfig::from_env();
    return config;
}

WebhookOutcome WebhookSender::deliver(const Task& task, std::size_t item, ItemAudio audio,
                                      std::int64_t timestamp) const {
    if (!storage_) {
        return send(delivery_request(task, item, std::move(audio), config_.payload,
                                     static_cast<double>(timestamp)),
                    timestamp);
    }
    // Upload first (the same key on every attempt: a retry overwrites), then
    // the webhook links to it. A failed upload is the attempt's outcome.
    const AudioFormat* format = find_audio_format(audio.format);
    const std::string key =
        storage_key(*config_.storage, task, item, format != nullptr ? format->extension : "bin");
    WebhookOutcome stored = storage_->put(key, audio.bytes, audio.content_type);
    if (stored.kind != WebhookOutcome::Kind::Delivered) return stored;
    const AudioLink link = storage_->presigned_get(key, timestamp);
    return send(delivery_request(task, item, std::move(audio), config_.payload,
                                 static_cast<double>(timestamp), &link),
                timestamp);
}

}  // namespace voxq
