// File: voxq/sink.hpp
//
// A webhook receiver for demos, tests and users checking their setup (`voxq
// sink`): it listens on host:port, verifies Standard Webhooks signatures when
// given secrets, and saves each body under `dir`, named by its webhook-id, with
// one JSON line per delivery appended to `dir/deliveries.jsonl`.
//
// Answers: 200 saved; 400 missing webhook headers; 401 bad or stale signature.
// Thread-safety: start/stop from one thread; received() from any.
#pragma once

#include <atomic>
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
};

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
