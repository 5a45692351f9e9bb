// Binding, serving and stopping an httplib::Server: shared by `voxq sink` and
// `voxq serve`.
#pragma once

#include <httplib.h>

#include <chrono>
#include <string>
#include <thread>

#include "voxq/errors.hpp"

namespace voxq {

class HttpListener {
  public:
    // Binds host:port (0: any free port). Throws QueueError, starting with
    // `who`, when it cannot.
    HttpListener(httplib::Server& server, const std::string& host, int port, const std::string& who)
        : server_(server) {
        if (port == 0) {
            port_ = server_.bind_to_any_port(host);
        } else if (server_.bind_to_port(host, port)) {
            port_ = port;
        }
        if (port_ <= 0) {
            throw QueueError(who + ": cannot listen on " + host + ":" + std::to_string(port) +
                             " (in use, or not an address of this machine)");
        }
    }
    ~HttpListener() { stop(); }
    HttpListener(const HttpListener&) = delete;
    HttpListener& operator=(const HttpListener&) = delete;

    [[nodiscard]] int port() const { return port_; }
    // Serves on a thread of its own; returns once it accepts connections.
    void start() {
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Serves on the calling thread until stop() is called from elsewhere.
    void run() { server_.listen_after_bind(); }
    void stop() {
        server_.stop();
        if (thread_.joinable()) thread_.join();
    }

  private:
    httplib::Server& server_;
    int port_ = 0;
    std::thread thread_;
};

}  // namespace voxq
