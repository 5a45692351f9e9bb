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
//   GET  /v1/stats?queue=   GET /v1/voices   GET /v1/openapi.json
//   GET  /metrics   GET /healthz   GET /   POST /inbox   GET /inbox/{webhook-id}
//
// Errors: {"error": {"code", "message"}} with 400 invalid_request (naming the
// field), 401 unauthorized, 403 forbidden (Host/Origin without a token), 404
// not_found, 405 method_not_allowed (with Allow), 408 timeout, 409
// invalid_transition / duplicate, 413 too_large, 415 unsupported_media_type, 431
// headers_too_large, 500 internal, 503 store_unavailable / unavailable / busy.
// With a token, every /v1 call needs "Authorization: Bearer <token>" (scheme in
// any case; compared in constant time; never taken from a query string).
// Without one (loopback only), requests whose Host is not a loopback name or
// whose Origin is not the service's own get 403.
//
// Bounds (SPEC §8, util/http_server.hpp): 16 KiB of request line and headers,
// bodies up to max_body_bytes whatever the framing, compressed bodies refused,
// JSON nesting and value counts bounded while parsing, header and body deadlines,
// connection caps in all and per client address.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "voxq/queue.hpp"
#include "voxq/speech.hpp"
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
    std::size_t inbox_max_entries = 256;                  // deliveries the inbox keeps
    std::size_t inbox_max_entry_bytes = std::size_t{8} << 20;      // one delivery
    std::size_t max_body_bytes_in_flight = std::size_t{96} << 20;  // all bodies being read
    std::size_t max_connections = 512;                             // VOXQ_API_MAX_CONNECTIONS
    std::size_t max_connections_per_client = 128;  // VOXQ_API_MAX_CONNECTIONS_PER_CLIENT
    std::size_t threads = 16;                 // VOXQ_API_THREADS (beyond ~16, Asio threads contend)
    std::size_t header_timeout_seconds = 10;  // VOXQ_API_HEADER_TIMEOUT: request line + headers

    // Reads VOXQ_API_TOKEN, VOXQ_API_MAX_BODY_BYTES, VOXQ_API_MAX_TASKS,
    // VOXQ_API_MAX_CONNECTIONS[_PER_CLIENT], VOXQ_API_HEADER_TIMEOUT and, for the inbox,
    // VOXQ_WEBHOOK_SECRET. Throws ConfigError naming the variable.
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
