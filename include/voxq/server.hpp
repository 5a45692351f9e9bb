// File: voxq/server.hpp
//
// `voxq serve`: the HTTP JSON API over a WorkerQueue (SPEC §8), /metrics in
// Prometheus text format, /healthz, the dashboard at /, and a small inbox that
// receives webhook deliveries so the dashboard can play what a test task made.
//
//   POST /v1/tasks                       one task object, or {"tasks": [...]} / [...]: all or none
//   GET  /v1/tasks?state=&queue=&limit=&cursor=
//   GET  /v1/tasks/{id}
//   POST /v1/tasks/{id}/cancel|resume|discard
//   GET  /v1/stats?queue=                GET /v1/voices
//   GET  /metrics   GET /healthz   GET /   POST /inbox   GET /inbox/{webhook-id}
//
// Errors: {"error": {"code", "message"}} with 400 (bad input, naming the field),
// 401 (token), 404 (no such task or route), 409 (state transition, duplicate id), 413 (body too
// large), 503 (store unavailable). With a token, every /v1 call needs
// "Authorization: Bearer <token>" (compared in constant time).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "voxq/queue.hpp"
#include "voxq/tts.hpp"
#include "voxq/worker.hpp"

namespace voxq {

struct ServerConfig {
    std::string host = "127.0.0.1";
    int port = 8080;                                      // 0: any free port
    std::string api_token;                                // VOXQ_API_TOKEN
    std::size_t max_body_bytes = std::size_t{4} << 20;    // VOXQ_API_MAX_BODY_BYTES
    std::size_t max_tasks_per_request = 1000;             // VOXQ_API_MAX_TASKS
    std::vector<std::string> inbox_secrets;               // verify deliveries to /inbox
    std::size_t inbox_max_bytes = std::size_t{64} << 20;  // audio the inbox keeps (oldest dropped)

    // Reads VOXQ_API_TOKEN, VOXQ_API_MAX_BODY_BYTES, VOXQ_API_MAX_TASKS and, for
    // the inbox, VOXQ_WEBHOOK_SECRET. Throws ConfigError naming the variable.
    static ServerConfig from_env();
    // Throws ConfigError: a non-loopback host needs a token.
    void validate() const;
};

class ApiServer {
  public:
    // `queue` must be initialized and outlive the server. `worker` (optional):
    // the embedded worker pool whose counters /metrics reports. `engines`
    // (optional): answers /v1/voices. Binds at once: throws ConfigError (see
    // validate) or QueueError when the port cannot be bound.
    ApiServer(WorkerQueue& queue, ServerConfig config, const Worker* worker = nullptr,
              std::shared_ptr<SpeechEngine> engines = nullptr);
    ~ApiServer();  // stop()
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    [[nodiscard]] int port() const;
    void start();  // serves on a thread of its own
    void run();    // serves on this thread until stop()
    void stop();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace voxq
