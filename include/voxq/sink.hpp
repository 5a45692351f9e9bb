// File: voxq/sink.hpp
//
// A webhook receiver for demos, tests and users checking their setup (`voxq
// sink`): it listens on host:port, verifies Standard Webhooks signatures when
// given secrets, and saves each body under `dir`, named by its webhook-id (see
// sink_file_stem), with one JSON line per delivery appended to
// `dir/deliveries.jsonl`. A delivery is answered 200 only once its file and its
// line are written and synced; the file is written under a temporary name and
// renamed into place, so a symlink in `dir` is replaced, never followed. A
// webhook-id already saved is not written again (replays change nothing).
//
// Answers: 200 saved (or already saved); 400 missing webhook headers; 401 bad or
// stale signature (the timestamp as sent, canonical decimal only); 405 not POST;
// 413 body beyond max_body_bytes (any framing); 507 the write failed (the sender
// retries).
// Thread-safety: start/stop from one thread; received() from any.
#pragma once

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace voxq {

struct SinkConfig {
    std::string host = "127.0.0.1";
    int port = 0;  // 0: any free port (see WebhookSink::port)
    std::filesystem::path dir;
    std::vector<std::string> secrets;  // empty: accept unsigned deliveries
    double tolerance_seconds = 300;
    std::size_t max_body_bytes = std::size_t{32} << 20;  // any framing; peak memory up to ~3x

    // Throws ConfigError: a port outside 0..65535, a malformed secret, or a
    // non-loopback host without a secret.
    void validate() const;
};

// The file name (without extension) for a webhook-id: the id itself when it is
// 1..200 of [A-Za-z0-9_.-] and does not start with '.', else "id-" + the SHA-256
// of the id in hex. Distinct ids never share a name.
[[nodiscard]] std::string sink_file_stem(const std::string& webhook_id);

class WebhookSink {
  public:
    // Binds the port (throws QueueError if it cannot) and creates `dir`.
    explicit WebhookSink(SinkConfig config);
    ~WebhookSink();  // stops
    WebhookSink(const WebhookSink&) = delete;
    WebhookSink& operator=(const WebhookSink&) = delete;

    [[nodiscard]] int port() const;
    // Serves on a thread of its own until stop().
    void start();
    // Serves on the calling thread until stop() is called from elsewhere.
    void run();
    void stop();
    // Deliveries saved so far.
    [[nodiscard]] std::size_t received() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace voxq
