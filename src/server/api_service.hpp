// The API's routes as the HTTP layer calls them (admit on the head, handle on the
// whole request), apart from any socket: ApiServer serves them on a port, and the
// fuzz target drives them with raw request bytes.
#pragma once

#include <memory>

#include "util/http_server.hpp"
#include "voxq/server.hpp"

namespace voxq {

class ApiService {
  public:
    // Throws ConfigError (ServerConfig::validate).
    ApiService(WorkerQueue& queue, ServerConfig config, const Worker* worker,
               std::shared_ptr<SpeechEngine> engines);
    ~ApiService();
    ApiService(const ApiService&) = delete;
    ApiService& operator=(const ApiService&) = delete;

    [[nodiscard]] const ServerConfig& config() const;
    [[nodiscard]] http::Limits limits() const;
    // Valid while this service lives.
    [[nodiscard]] http::Handlers handlers();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace voxq
