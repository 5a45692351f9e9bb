// File: voxq/webhook.hpp
//
// Webhook delivery: POST one item's audio to its response_url, signed per
// Standard Webhooks, refusing internal addresses unless allowed, and classify the
// outcome by what the queue should do with the task (SPEC §7):
//   2xx                                         -> Delivered
//   408, 429, 5xx, timeouts, connection errors  -> Transient (retry; Retry-After honoured)
//   other 4xx (410 Gone included), 3xx         -> Permanent (discard)
//   an address the policy refuses              -> Refused (permanent; nothing was sent)
//
// Thread-safety: a WebhookSender may be used from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "voxq/task.hpp"

namespace voxq {

// An IPv4 or IPv6 network in CIDR form ("10.0.0.0/8", "::1/128", "127.0.0.1").
struct IpNetwork {
    std::vector<std::uint8_t> address;  // 4 or 16 bytes
    int prefix_length = 0;
    // Throws ConfigError naming `text` if it is not a CIDR.
    static IpNetwork parse(const std::string& text);
    [[nodiscard]] bool contains(const std::vector<std::uint8_t>& ip) const;
};

// Why an address may not be dialled, or empty if it may. `ip` is 4 or 16 bytes;
// IPv4-mapped IPv6 addresses are judged by their IPv4 part.
[[nodiscard]] std::string refused_address_reason(const std::vector<std::uint8_t>& ip,
                                                 const std::vector<IpNetwork>& allowed);

// What a delivery's body is (VOXQ_WEBHOOK_PAYLOAD, SPEC §7).
enum class WebhookPayload {
    // application/json: a Standard Webhooks event ("speech.item.ready") that the
    // official verification libraries accept as it comes; the audio inline as
    // base64, or a link when object storage holds it.
    Json,
    // The audio itself as the body, with its Content-Type; the metadata in
    // voxq-* headers. Receivers verify the signature over the raw bytes.
    Raw,
};

// Object storage for the audio (SPEC §7): any S3-compatible store. With it, the
// audio is uploaded (SigV4-signed PUT) and the delivery links to it with a
// presigned GET URL instead of carrying it.
struct StorageConfig {
    std::string bucket;                // VOXQ_STORAGE_URL=s3://BUCKET[/PREFIX]
    std::string prefix;                // without leading or trailing '/'; may be empty
    std::string endpoint;              // VOXQ_S3_ENDPOINT "http(s)://host[:port]" (path-style);
                                       // empty: AWS for the region (virtual-hosted)
    std::string region = "us-east-1";  // VOXQ_S3_REGION
    std::string access_key_id;         // AWS_ACCESS_KEY_ID
    std::string secret_access_key;     // AWS_SECRET_ACCESS_KEY (never logged)
    std::string session_token;         // AWS_SESSION_TOKEN, optional
    std::int64_t url_ttl = std::int64_t{7} * 24 * 3600;  // VOXQ_STORAGE_URL_TTL, 1 s .. 7 days
    double connect_timeout = 5;                          // the webhook's timeouts
    double total_timeout = 30;
    // nullopt when VOXQ_STORAGE_URL is unset; ConfigError naming the variable
    // for a malformed URL, endpoint or TTL, or missing credentials. `url`, when
    // given, is used instead of VOXQ_STORAGE_URL (voxq say -o s3://...).
    static std::optional<StorageConfig> from_env(std::optional<std::string> url = std::nullopt);
};

struct WebhookConfig {
    // VOXQ_WEBHOOK_SECRET: space-separated `whsec_<base64>` secrets of at least
    // 24 bytes each; each yields one `v1,` signature (several during a
    // rotation). Empty: unsigned.
    std::vector<std::string> secrets;
    // VOXQ_WEBHOOK_PAYLOAD: json (default) or raw.
    WebhookPayload payload = WebhookPayload::Json;
    // VOXQ_WEBHOOK_ALLOW_NETS: CIDRs allowed although internal (loopback,
    // private, link-local, metadata). Default: none.
    std::vector<IpNetwork> allow_nets;
    // VOXQ_WEBHOOK_CONNECT_TIMEOUT / VOXQ_WEBHOOK_TIMEOUT, seconds. Defaults 5 and 30.
    double connect_timeout = 5;
    double total_timeout = 30;
    // Object storage for the audio (VOXQ_STORAGE_URL and the S3 settings); none
    // by default.
    std::optional<StorageConfig> storage;
    // Reads the variables above (ConfigError naming the variable on bad values).
    static WebhookConfig from_env();
};

// Throws ConfigError naming `variable` unless `secret` is `whsec_` and the
// base64 of at least 24 bytes (the Standard Webhooks minimum).
void check_webhook_secret(const std::string& secret, std::string_view variable);

struct WebhookRequest {
    std::string url;
    std::string body;
    std::string content_type;                    // e.g. "audio/wav"
    std::string message_id;                      // webhook-id: stable across retries
    std::map<std::string, std::string> headers;  // extra headers (task id, item, voice, attempt)
};

// One item's audio, as a delivery describes it.
struct ItemAudio {
    std::string bytes;         // encoded
    std::string content_type;  // with its parameters: "audio/pcm;rate=22050;channels=1;..."
    std::string format;        // the request's format name: "pcm"
    int sample_rate = 0;       // of the speech that was encoded (Opus decodes at 48 kHz)
    int channels = 1;
    double duration_seconds = 0;
};

// Where object storage put an item's audio: a presigned GET link.
struct AudioLink {
    std::string url;
    std::int64_t expires_at = 0;  // Unix time
};

// The webhook-id of item `item` of `task`: "msg_" and 27 characters of
// [A-Za-z0-9_-], a SHA-256 of the task's id, creation time and the item index.
// The same for every attempt (receivers dedupe on it), distinct between items
// and tasks, and not chosen by the caller (no '.', whatever the task id holds).
[[nodiscard]] std::string webhook_message_id(const Task& task, std::size_t item);

// The delivery of item `item` of `task` (SPEC §7) at Unix time `now`, as
// `payload` says: a Standard Webhooks event with the audio inline (or `link`,
// when object storage holds it), or the raw audio with voxq-* headers.
[[nodiscard]] WebhookRequest delivery_request(const Task& task, std::size_t item, ItemAudio audio,
                                              WebhookPayload payload, double now,
                                              const AudioLink* link = nullptr);

// A delivery as a receiver sees it once the signature is verified: either
// payload kind, unwrapped.
struct ReceivedDelivery {
    std::string task_id;
    std::int64_t item_index = 0;
    std::string content_type;  // of the audio
    std::string audio;         // the audio; empty when it is linked
    std::string audio_url;     // the link, when object storage holds the audio
    // The event as JSON without its audio_base64; for a raw delivery, the same
    // fields read from its voxq-* headers.
    std::string event;
};

// Looks a request header up by its lowercase name ("" when absent).
using HeaderLookup = std::function<std::string(const std::string& name)>;

// Unwraps a voxq delivery of either kind: a JSON "speech.item.ready" event, or
// a body with voxq-task-id and voxq-item headers. nullopt when the request is
// neither (not a voxq delivery). Throws ValidationError naming what is wrong
// with one that claims to be: a field missing or of the wrong type, audio that
// is not base64, audio whose size or SHA-256 differs from what it says.
// A raw delivery's audio is moved out of `body`; any other body is left as it is.
[[nodiscard]] std::optional<ReceivedDelivery> unwrap_delivery(const HeaderLookup& header,
                                                              std::string& body);

struct WebhookOutcome {
    enum class Kind { Delivered, Transient, Permanent, Refused };
    Kind kind = Kind::Transient;
    long http_status = 0;               // 0 when no response was received
    std::optional<double> retry_after;  // seconds, from a Retry-After header
    // The request may have reached the receiver (a timeout after sending).
    bool in_doubt = false;
    std::string message;  // one line: what happened (never the secrets)
};

// The signature header value for one message: "v1,<base64>" per secret,
// space-separated. Throws ConfigError if a secret is not whsec_<base64>.
[[nodiscard]] std::string sign_webhook(const std::vector<std::string>& secrets,
                                       const std::string& message_id, std::int64_t timestamp,
                                       const std::string& body);

// Seconds to wait from a Retry-After value (delta-seconds or an HTTP date) at
// Unix time `now`; nullopt when it is neither. Never throws; values beyond 10^9
// seconds saturate there (callers clamp to QUEUE_MAX_RETRY_DELAY).
[[nodiscard]] std::optional<double> parse_retry_after(std::string_view value, std::int64_t now);

// A new `whsec_` secret of 32 random bytes.
[[nodiscard]] std::string random_webhook_secret();

// Verifies a Standard Webhooks signature header against any of `secrets`, with
// the timestamp within `tolerance_seconds` of `now` (constant-time compare).
// Returns "" if valid, else why not.
[[nodiscard]] std::string webhook_signature_problem(
    const std::vector<std::string>& secrets, const std::string& message_id,
    const std::string& timestamp, const std::string& body, const std::string& signature_header,
    std::int64_t now, double tolerance_seconds = 300);

// The object key of item `item` of `task`: PREFIX/<task id>/<item>.<extension>,
// the same on every attempt (a retry overwrites; nothing is duplicated).
[[nodiscard]] std::string storage_key(const StorageConfig& config, const Task& task,
                                      std::size_t item, std::string_view extension);

class CurlPool;  // kept-alive connections (src/util/curl.hpp)

class ObjectStorage {
  public:
    explicit ObjectStorage(StorageConfig config);
    ~ObjectStorage();
    ObjectStorage(const ObjectStorage&) = delete;
    ObjectStorage& operator=(const ObjectStorage&) = delete;
    // Uploads `bytes` under `key`: Delivered when stored; Transient for
    // connection errors, timeouts, 408, 429, 5xx; Permanent for a refusal (403,
    // 404 bucket, ...) with the store's own code and message.
    [[nodiscard]] WebhookOutcome put(const std::string& key, const std::string& bytes,
                                     const std::string& content_type) const;
    // A presigned GET URL of `key`, valid url_ttl seconds from Unix time `now`.
    [[nodiscard]] AudioLink presigned_get(const std::string& key, std::int64_t now) const;
    [[nodiscard]] const StorageConfig& config() const { return config_; }

  private:
    StorageConfig config_;
    std::unique_ptr<CurlPool> connections_;
};

class WebhookSender {
  public:
    explicit WebhookSender(WebhookConfig config);
    ~WebhookSender();
    WebhookSender(const WebhookSender&) = delete;
    WebhookSender& operator=(const WebhookSender&) = delete;

    // Sends one request; never throws for network or HTTP failures (they are
    // outcomes). `timestamp` is the Unix time of this attempt (webhook-timestamp).
    WebhookOutcome send(const WebhookRequest& request, std::int64_t timestamp) const;

    // Delivers item `item` of `task` in the configured payload kind, at Unix time
    // `timestamp`.
    WebhookOutcome deliver(const Task& task, std::size_t item, ItemAudio audio,
                           std::int64_t timestamp) const;

  private:
    WebhookConfig config_;
    std::unique_ptr<ObjectStorage> storage_;  // when config_.storage is set
    std::unique_ptr<CurlPool> connections_;
};

}  // namespace voxq
