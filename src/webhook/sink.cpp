// `voxq sink` (SPEC §7): verifies, then saves each delivery durably under a name
// that cannot collide or leave the folder, and answers 2xx only once the file and
// its log line are on disk.
#include "voxq/sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
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

// Deliveries are saved in two steps. Each request writes and syncs its files
// under temporary names on its own thread, in parallel with the others; then
// one committer puts every waiting delivery in place at once: the renames, one
// folder sync, and one append (and sync) of all their log lines. So a busy sink
// pays two syncs per group, not per delivery, and no request holds a lock
// while it writes.
struct WebhookSink::Impl {
    // A delivery whose files are written, waiting for the committer.
    struct Commit {
        std::string id;
        std::vector<std::filesystem::path> targets;  // renamed from target + ".partial", in order
        std::string log_line;
        std::string error;  // set by the committer: why it was not saved
        bool done = false;
    };

    SinkConfig config;
    std::atomic<std::size_t> received = 0;
    std::mutex files_mutex;
    std::condition_variable files_changed;
    std::set<std::string> saved;    // guarded: webhook-ids saved by this run
    std::set<std::string> writing;  // guarded: webhook-ids being saved now
    std::vector<Commit*> waiting;   // guarded: written, not yet committed
    bool committing = false;        // guarded: a committer is at work
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

        // A replay (or a retry whose answer was lost): nothing is written again,
        // and the sender hears that the item is there.
        const std::string& last = files.back().first;
        const auto already = [&] {
            return text(200, "already saved " + last + " (not written again)");
        };
        {
            // One request per webhook-id at a time: a duplicate waits for the
            // first to finish, then finds it saved (or, if it failed, tries).
            std::unique_lock lock(files_mutex);
            files_changed.wait(lock, [&] { return writing.count(id) == 0; });
            if (saved.count(id) > 0) return already();
            writing.insert(id);
        }
        Commit commit;
        commit.id = id;
        commit.log_line = log_line;
        // Not handed to the committer (saved by an earlier run, a failed write,
        // or a throw): the id is free again, and no partial file is left.
        const auto give_up = [&] {
            for (const auto& target : commit.targets) remove_partial(target);
            std::lock_guard lock(files_mutex);
            writing.erase(id);
            files_changed.notify_all();
        };
        // Saved before this run started: the id is ours, so the file system is
        // asked outside the lock every request shares.
        std::error_code ignored;
        if (std::filesystem::is_regular_file(config.dir / last, ignored)) {
            give_up();
            return already();
        }
        try {
            for (const auto& [name, bytes] : files) {
                commit.targets.push_back(config.dir / name);
                commit.error = write_partial(commit.targets.back(), bytes);
                if (!commit.error.empty()) break;
            }
        } catch (...) {
            give_up();
            throw;
        }
        if (!commit.error.empty()) {
            give_up();
            return text(507, "not saved: " + commit.error);
        }
        put_in_place(commit);
        if (!commit.error.empty()) return text(507, "not saved: " + commit.error);
        return text(200, "saved " + last);
    }

    // Hands `commit` to the committer, or becomes it: the first to find none at
    // work commits every delivery waiting, its own among them. Returns once
    // `commit` is done (its error says whether it was saved).
    void put_in_place(Commit& commit) {
        std::unique_lock lock(files_mutex);
        waiting.push_back(&commit);
        files_changed.wait(lock, [&] { return commit.done || !committing; });
        if (commit.done) return;
        committing = true;
        std::vector<Commit*> group;
        group.swap(waiting);
        lock.unlock();
        try {
            commit_group(group);
        } catch (const std::exception& e) {  // out of memory, say: no delivery is left waiting
            for (Commit* c : group) {
                if (c->error.empty()) c->error = std::string("commit: ") + e.what();
            }
        }
        lock.lock();
        for (Commit* c : group) {
            writing.erase(c->id);
            if (c->error.empty()) {
                saved.insert(c->id);
                ++received;
            }
            c->done = true;
        }
        committing = false;
        files_changed.notify_all();
    }

    // Renames each delivery's files into place (the file named last is the one
    // whose presence means "saved"), then one folder sync makes every rename
    // durable, then one append adds their log lines, synced.
    void commit_group(const std::vector<Commit*>& group) const {
        std::string lines;
        for (Commit* c : group) {
            for (const auto& target : c->targets) {
                const std::filesystem::path temp = target.string() + ".partial";
                if (c->error.empty() && ::rename(temp.c_str(), target.c_str()) != 0)
                    c->error = std::string("rename: ") + std::strerror(errno);
                if (!c->error.empty()) remove_partial(target);
            }
        }
        Fd dir(::open(config.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dir.get() < 0 || ::fsync(dir.get()) != 0) {
            const std::string why = std::string("fsync of the folder: ") + std::strerror(errno);
            for (Commit* c : group) {
                if (c->error.empty()) c->error = why;
            }
            return;
        }
        for (const Commit* c : group) {
            if (c->error.empty()) lines += c->log_line;
        }
        if (lines.empty()) return;
        if (const std::string error = append_log(lines); !error.empty()) {
            for (Commit* c : group) {
                if (c->error.empty()) c->error = error;
            }
        }
    }

    // Writes `body` to a new file beside `target` (target + ".partial") and
    // syncs it; the committer renames it into place, replacing a symlink there,
    // never following it. "" when the file is on disk.
    [[nodiscard]] static std::string write_partial(const std::filesystem::path& target,
                                                   const std::string& body) {
        const std::filesystem::path temp = target.string() + ".partial";
        remove_partial(target);  // a leftover of a crash (removes a symlink itself)
        Fd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        const auto failed = [&](const char* step) {
            std::string why = std::string(step) + ": " + std::strerror(errno);
            remove_partial(target);
            return why;
        };
        if (out.get() < 0) return failed("open");
        if (!write_all(out.get(), body)) return failed("write");
        if (::fsync(out.get()) != 0) return failed("fsync");
        if (!out.close()) return failed("close");
        return {};
    }

    static void remove_partial(const std::filesystem::path& target) {
        std::error_code ignored;
        std::filesystem::remove(target.string() + ".partial", ignored);
    }

    // Appends lines to deliveries.jsonl and syncs it.
    [[nodiscard]] std::string append_log(const std::string& lines) const {
        const std::filesystem::path log = config.dir / "deliveries.jsonl";
        Fd lf(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (lf.get() < 0 || !write_all(lf.get(), lines) || ::fsync(lf.get()) != 0)
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
    // A thread per core: requests block only in their own file writes (the
    // commit is shared), and more threads on one io_context cost more in
    // wakeups than they overlap (scripts/bench_sink.py: 8 threads on 2 cores
    // took ~5 ms CPU per delivery, 2 took ~3.4).
    limits.threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 2, 8);
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
