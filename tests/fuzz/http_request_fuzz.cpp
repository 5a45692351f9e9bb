// Raw bytes as HTTP requests through the server's own parser, limits, framing
// rules and the API's router and handlers (no sockets), on an in-memory store.
#include <cstdint>
#include <memory>
#include <string_view>

#include "server/api_service.hpp"
#include "voxq/queue.hpp"

namespace {

struct Api {
    voxq::WorkerQueue queue{[] {
        voxq::QueueConfig c;
        c.database_url = "sqlite:///:memory:";
        return c;
    }()};
    std::unique_ptr<voxq::ApiService> service;
    voxq::http::Handlers handlers;
    voxq::http::Limits limits;
    Api() {
        queue.initialize();
        voxq::ServerConfig config;
        config.max_body_bytes = 64 * 1024;
        service = std::make_unique<voxq::ApiService>(queue, config, nullptr, nullptr);
        handlers = service->handlers();
        limits = service->limits();
        limits.max_header_bytes = 4096;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // Tasks the inputs stored would slow every later run: a fresh in-memory store
    // now and then.
    static std::unique_ptr<Api> api;
    static std::size_t runs = 0;
    if (!api || ++runs % 4096 == 0) {
        api.reset();
        api = std::make_unique<Api>();
    }
    const auto answers = voxq::http::handle_bytes(
        std::string_view(reinterpret_cast<const char*>(data), size), api->limits, api->handlers);
    for (const auto& a : answers) {
        if (a.status < 100 || a.status > 599) __builtin_trap();
    }
    return 0;
}
