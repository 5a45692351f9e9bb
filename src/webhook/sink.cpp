// `voxq sink` (SPEC §7): verifies, then saves each delivery durably under a name
// that cannot collide or leave the folder, and answers 2xx only once the file and
// its log line are on disk.
#include "voxq/sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "util/http_server.hpp"
#include "util/text.hpp"
#include "voxq/audio_format.hpp"
#include "voxq/errors.hpp"
#include "voxq/webhook.hpp"
#include "webhook/encoding.hpp"

namespace voxq {

namespace {

std::string extension_for(const std::string& content_type) {
    if (const AudioFormat* f = audio_format_for_content_type(content_type)) {
        return "." + std::string(f->extension);
    }
    if (content_type.rfind("application/json", 0) == 0) return ".json";
    return ".bin";
}

// Writes all of `data` to `fd`; false (errno set) on any failure.
bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return fd_; }
    // Closes now; false if the close reported a write error.
    bool close() {
        const int fd = fd_;
        fd_ = -1;
        return ::close(fd) == 0;
    }

  private:
    int fd_;
};

http::Response text(int status, const std::string& body) {
    http::Response r;
    r.status = status;
    r.content_type = "text/plain; charset=utf-8";
    r.body = to_valid_utf8(body) + "\n";
    return r;
}

}  // namespace

std::string sink_file_stem(const std::string& webhook_id) {
    const bool plain = !webhook_id.empty() && webhook_id.size() <= 200 &&
                       webhook_id.front() != '.' &&
                       std::all_of(webhook_id.begin(), webhook_id.end(), [](char c) {
                           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                  (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
                       });
    // Any other id gets a name of its digest: distinct ids never share a file.
    return plain ? webhook_id : "id-" + webhook::sha256_hex(webhook_id);
}

struct WebhookSink::Impl {
    SinkConfig config;
    std::atomic<std::size_t> received = 0;
    std::mutex files_mutex;       // one delivery written at a time
    std::set<std::string> saved;  // guarded by files_mutex: webhook-ids saved by this run
    std::unique_ptr<http::Server> server;

    std::optional<http::Response> admit(const http::Request& req) const {
        if (req.method != "POST") {
            http::Response r = text(405, "only POST");
            r.headers.emplace_back("Allow", "POST");
            return r;
        }
        if (req.header("webhook-id").empty() || req.header("webhook-timestamp").empty())
            return text(400, "missing webhook-id or webhook-timestamp");
        if (!config.secrets.empty() && req.header("webhook-signature").empty())
            return text(401, "missing webhook-signature");
        return std::nullopt;
    }

    http::Response handle(http::Request& req) {
        const std::string id = req.header("webhook-id");
        const std::string ts = req.header("webhook-timestamp");
        bool verified = false;
        if (!config.secrets.empty()) {
            const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
            const std::string problem = webhook_signature_problem(config.secrets, id, ts, req.body,
                                                                  req.header("webhook-signature"),
                                                                  now, config.tolerance_seconds);
            if (!problem.empty()) return text(401, problem);
            verified = true;
        }
        const std::string content_type = req.header("content-type");
        const std::string stem = sink_file_stem(id);
        // Everything that could fail on the sender's bytes is done before the files.
        std::optional<ReceivedDelivery> delivery;
        try {
            delivery = unwrap_delivery([&req](const std::string& name) { return req.header(name); },
                                       req.body);
        } catch (const ValidationError& e) {
            return text(400, e.what());
        }
        std::vector<std::pair<std::string, std::string>> files;  // name, bytes
        nlohmann::json line = {{"webhook_id", to_valid_utf8(id)}, {"verified", verified}};
        if (delivery) {
            // The event, then the audio (unless object storage holds it) beside it:
            // the file written last is the one whose presence means "saved".
            line["event"] = stem + ".json";
            line["task_id"] = to_valid_utf8(delivery->task_id);
            line["item_index"] = delivery->item_index;
            files.emplace_back(line["event"], delivery->event + "\n");
            if (delivery->audio_url.empty()) {
                line["file"] = stem + extension_for(delivery->content_type);
                line["bytes"] = delivery->audio.size();
                line["content_type"] = to_valid_utf8(delivery->content_type);
                files.emplace_back(line["file"], std::move(delivery->audio));
            } else {
                line["audio_url"] = to_valid_utf8(delivery->audio_url);
            }
        } else {  // not a voxq delivery: the body as it came
            line["file"] = stem + extension_for(content_type);
            line["bytes"] = req.body.size();
            line["content_type"] = to_valid_utf8(content_type);
            files.emplace_back(line["file"], std::move(req.body));
        }
        const std::string log_line =
            line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";

        std::lock_guard lock(files_mutex);
        const std::string& last = files.back().first;
        if (saved.count(id) > 0 || std::filesystem::is_regular_file(config.dir / last)) {
            // A replay (or a retry whose answer was lost): nothing is written again,
            // and the sender hears that the item is there.
            return text(200, "already saved " + last + " (not written again)");
        }
        for (const auto& [name, bytes] : files) {
            if (const std::string error = save(config.dir / name, bytes); !error.empty())
                return text(507, "not saved: " + error);
        }
        // One folder sync makes every rename above durable.
        Fd dir(::open(config.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dir.get() < 0 || ::fsync(dir.get()) != 0)
            return text(507,
                        std::string("not saved: fsync of the folder: ") + std::strerror(errno));
        if (const std::string error = append_log(log_line); !error.empty())
            return text(507, "not saved: " + error);
        saved.insert(id);
        ++received;
        return text(200, "saved " + last);
    }

    // Writes `body` to a new file beside `target`, syncs it and renames it into
    // place (replacing a symlink there, never following it). "" when the file is
    // on disk; the caller syncs the folder.
    [[nodiscard]] std::string save(const std::filesystem::path& target,
                                   const std::string& body) const {
        const std::filesystem::path temp = target.string() + ".partial";
        std::filesystem::remove(temp);  // a leftover of a crash (removes a symlink itself)
        Fd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        const auto failed = [&](const char* step) {
            std::string why = std::string(step) + ": " + std::strerror(errno);
            std::filesystem::remove(temp);
            return why;
        };
        if (out.get() < 0) return failed("open");
        if (!write_all(out.get(), body)) return failed("write");
        if (::fsync(out.get()) != 0) return failed("fsync");
        if (!out.close()) return failed("close");
        if (::rename(temp.c_str(), target.c_str()) != 0) return failed("rename");
        return {};
    }

    // Appends one line to deliveries.jsonl and syncs it.
    [[nodiscard]] std::string append_log(const std::string& log_line) const {
        const std::filesystem::path log = config.dir / "deliveries.jsonl";
        Fd lf(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (lf.get() < 0 || !write_all(lf.get(), log_line) || ::fsync(lf.get()) != 0)
            return std::string("deliveries.jsonl: ") + std::strerror(errno);
        return {};
    }
};

void SinkConfig::validate() const {
    if (port < 0 || port > 65535)
        throw ConfigError("sink: port " + std::to_string(port) + " is not in 1..65535");
    if (!http::is_loopback_host(host) && secrets.empty())
        throw ConfigError("sink: listening on " + host +
                          " (beyond loopback) needs a secret (VOXQ_SINK_SECRET): anyone could "
                          "write files here");
    for (const std::string& secret : secrets) check_webhook_secret(secret, "VOXQ_SINK_SECRET");
}

WebhookSink::WebhookSink(SinkConfig config) : impl_(std::make_unique<Impl>()) {
    impl_->config = std::move(config);
    impl_->config.validate();
    std::error_code ec;
    std::filesystem::create_directories(impl_->config.dir, ec);
    if (ec)
        throw QueueError("sink: cannot create " + impl_->config.dir.string() + ": " + ec.message());
    http::Limits limits;
    limits.max_body_bytes = impl_->config.max_body_bytes;
    limits.max_body_bytes_in_flight = std::max(limits.max_body_bytes * 2, std::size_t{128} << 20);
    limits.threads = 8;
    http::Handlers handlers;
    Impl* impl = impl_.get();
    handlers.admit = [impl](const http::Request& req, std::size_t&) { return impl->admit(req); };
    handlers.handle = [impl](http::Request& req) { return impl->handle(req); };
    handlers.error = [](int status, const std::string& message) { return text(status, message); };
    impl_->server = std::make_unique<http::Server>(impl_->config.host, impl_->config.port, limits,
                                                   std::move(handlers), "sink");
}

WebhookSink::~WebhookSink() {
    stop();
}

int WebhookSink::port() const {
    return impl_->server->port();
}

void WebhookSink::start() {
    impl_->server->start();
}

void WebhookSink::run() {
    impl_->server->run();
}

void WebhookSink::stop() {
    impl_->server->stop();
}

std::size_t WebhookSink::received() const {
    return impl_->received.load();
}

}  // namespace voxq
