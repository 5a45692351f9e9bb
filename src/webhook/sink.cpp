#include "voxq/sink.hpp"

#include <httplib.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "voxq/errors.hpp"
#include "voxq/webhook.hpp"
#include "webhook/http_listener.hpp"

namespace voxq {

namespace {

std::string extension_for(const std::string& content_type) {
    if (content_type.rfind("audio/wav", 0) == 0 || content_type.rfind("audio/x-wav", 0) == 0) {
        return ".wav";
    }
    if (content_type.rfind("audio/mpeg", 0) == 0) return ".mp3";
    if (content_type.rfind("audio/ogg", 0) == 0 || content_type.rfind("audio/opus", 0) == 0) {
        return ".ogg";
    }
    if (content_type.rfind("audio/flac", 0) == 0) return ".flac";
    if (content_type.rfind("audio/L16", 0) == 0) return ".pcm";
    return ".bin";
}

// A webhook-id as a file name: only [A-Za-z0-9_.-], never a path.
std::string file_name_for(const std::string& id) {
    std::string out;
    for (char c : id.substr(0, 200)) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-';
        out += ok ? c : '_';
    }
    return out.empty() ? std::string("unnamed") : out;
}

}  // namespace

struct WebhookSink::Impl {
    SinkConfig config;
    httplib::Server server;
    std::unique_ptr<HttpListener> listener;  // after `server`: stops it before it goes
    std::atomic<std::size_t> received = 0;
    std::mutex files;  // one delivery written at a time

    void handle(const httplib::Request& req, httplib::Response& res) {
        const std::string id = req.get_header_value("webhook-id");
        const std::string ts = req.get_header_value("webhook-timestamp");
        if (id.empty() || ts.empty()) {
            res.status = 400;
            res.set_content("missing webhook-id or webhook-timestamp\n", "text/plain");
            return;
        }
        bool verified = false;
        if (!config.secrets.empty()) {
            const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
            const std::string problem = webhook_signature_problem(
                config.secrets, id, ts, req.body, req.get_header_value("webhook-signature"), now,
                config.tolerance_seconds);
            if (!problem.empty()) {
                res.status = 401;
                res.set_content(problem + "\n", "text/plain");
                return;
            }
            verified = true;
        }
        const std::string content_type = req.get_header_value("Content-Type");
        const std::string name = file_name_for(id) + extension_for(content_type);
        nlohmann::json line = {{"webhook_id", id},
                               {"file", name},
                               {"bytes", req.body.size()},
                               {"content_type", content_type},
                               {"verified", verified}};
        for (const auto& [k, v] : req.headers) {
            if (k.rfind("voxq-", 0) == 0) line[k] = v;
        }
        {
            std::lock_guard lock(files);
            std::ofstream(config.dir / name, std::ios::binary) << req.body;
            std::ofstream(config.dir / "deliveries.jsonl", std::ios::app) << line.dump() << "\n";
        }
        ++received;
        res.status = 200;
        res.set_content("saved " + name + "\n", "text/plain");
    }
};

WebhookSink::WebhookSink(SinkConfig config) : impl_(std::make_unique<Impl>()) {
    impl_->config = std::move(config);
    std::error_code ec;
    std::filesystem::create_directories(impl_->config.dir, ec);
    if (ec)
        throw QueueError("sink: cannot create " + impl_->config.dir.string() + ": " + ec.message());
    for (const std::string& secret : impl_->config.secrets) {
        (void)sign_webhook({secret}, "check", 0, "");  // ConfigError if malformed
    }
    impl_->server.set_payload_max_length(64U << 20U);
    impl_->server.set_tcp_nodelay(true);  // no Nagle + delayed-ACK stall on each answer
    impl_->server.Post(".*",
                       [impl = impl_.get()](const httplib::Request& req, httplib::Response& res) {
                           impl->handle(req, res);
                       });
    impl_->listener = std::make_unique<HttpListener>(impl_->server, impl_->config.host,
                                                     impl_->config.port, "sink");
}

WebhookSink::~WebhookSink() {
    stop();
}

int WebhookSink::port() const {
    return impl_->listener->port();
}

void WebhookSink::start() {
    impl_->listener->start();
}

void WebhookSink::run() {
    impl_->listener->run();
}

void WebhookSink::stop() {
    impl_->listener->stop();
}

std::size_t WebhookSink::received() const {
    return impl_->received.load();
}

}  // namespace voxq
