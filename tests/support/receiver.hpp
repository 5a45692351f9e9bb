// A webhook receiver on 127.0.0.1 for tests: answers every POST with a status
// (fixed, or scripted per webhook-id and attempt), optionally after a delay, and
// records what it got. Its fields are shared with the server's threads under a
// mutex: the HTTP round trip orders them too, but inside an uninstrumented
// library that TSan cannot see.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include "voxq/webhook.hpp"

namespace voxq::test {

class Receiver {
  public:
    // status for the nth (1-based) delivery of one item ("<task id>#<item>")
    using Script = std::function<int(const std::string& item, int nth)>;

    Receiver() : Receiver(Port{0}) {}
    // On a given port (0: any free one), e.g. to stand in for a receiver that restarted.
    struct Port {
        int number;
    };
    explicit Receiver(Port port) {
        server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
            std::chrono::milliseconds delay;
            {
                std::lock_guard lock(mutex_);
                ++hits_;
                connections_.insert(req.remote_port);  // one client port per connection
                const std::string id = req.get_header_value("webhook-id");
                ++hits_by_id_[id];
                const std::string item = item_key(req);
                const int nth = ++hits_by_item_[item];
                last_body_ = req.body;
                last_headers_ = req.headers;
                res.status = script_ ? script_(item, nth) : status_;
                for (const auto& [k, v] : reply_headers_) res.set_header(k, v);
                if (res.status == 302) res.set_header("Location", "/elsewhere");
                delay = delay_;
            }
            std::this_thread::sleep_for(delay);
        });
        // Senders keep connections alive; an idle one ends within a second, so
        // stopping the server does not wait out httplib's default 5 s.
        server_.set_keep_alive_timeout(1);
        if (port.number == 0) {
            port_ = server_.bind_to_any_port("127.0.0.1");
        } else if (server_.bind_to_port("127.0.0.1", port.number)) {
            port_ = port.number;
        }
        // Unbound, the server would never run and the wait below never end.
        if (port_ <= 0)
            throw std::runtime_error("test receiver: cannot bind 127.0.0.1:" +
                                     std::to_string(port.number));
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    explicit Receiver(int status, std::chrono::milliseconds delay = {}) : Receiver() {
        answer(status);
        std::lock_guard lock(mutex_);  // the server's threads are already running
        delay_ = delay;
    }
    ~Receiver() {
        server_.stop();
        thread_.join();
    }
    Receiver(const Receiver&) = delete;
    Receiver& operator=(const Receiver&) = delete;

    [[nodiscard]] std::string url(const std::string& path = "/hook") const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }
    void answer(int status, std::map<std::string, std::string> headers = {}) {
        std::lock_guard lock(mutex_);
        status_ = status;
        reply_headers_ = std::move(headers);
    }
    void answer_with(Script script) {
        std::lock_guard lock(mutex_);
        script_ = std::move(script);
    }
    int hits() {
        std::lock_guard lock(mutex_);
        return hits_;
    }
    [[nodiscard]] int port() const { return port_; }
    // How many connections the requests so far came in on.
    std::size_t connections() {
        std::lock_guard lock(mutex_);
        return connections_.size();
    }
    int hits_for(const std::string& webhook_id) {
        std::lock_guard lock(mutex_);
        auto it = hits_by_id_.find(webhook_id);
        return it == hits_by_id_.end() ? 0 : it->second;
    }
    // Deliveries of item `item` of task `task_id`, either payload kind.
    int hits_for_item(const std::string& task_id, std::size_t item) {
        std::lock_guard lock(mutex_);
        auto it = hits_by_item_.find(task_id + "#" + std::to_string(item));
        return it == hits_by_item_.end() ? 0 : it->second;
    }
    // The audio of the last delivery, unwrapped from either payload kind.
    std::string last_audio() {
        const auto d = last_delivery();
        return d ? d->audio : last_body();
    }
    // The last delivery, unwrapped (its event, its audio); nullopt if it was none.
    std::optional<ReceivedDelivery> last_delivery() {
        std::lock_guard lock(mutex_);
        std::string body = last_body_;
        return unwrap_delivery(
            [this](const std::string& name) {
                auto it = last_headers_.find(name);
                return it == last_headers_.end() ? std::string() : it->second;
            },
            body);
    }
    std::string last_body() {
        std::lock_guard lock(mutex_);
        return last_body_;
    }
    std::string last_header(const std::string& name) {
        std::lock_guard lock(mutex_);
        auto it = last_headers_.find(name);
        return it == last_headers_.end() ? std::string() : it->second;
    }

  private:
    // "<task id>#<item>" of a delivery, from its event or its voxq-* headers.
    // Read from the event's metadata only: voxq writes audio_base64 last, and
    // parsing megabytes of it per request (slow under sanitizers) would make the
    // sender time out.
    static std::string item_key(const httplib::Request& req) {
        if (req.get_header_value("Content-Type") != "application/json") {
            const std::string task = req.get_header_value("voxq-task-id");
            return task.empty() ? std::string() : task + "#" + req.get_header_value("voxq-item");
        }
        const std::size_t audio = req.body.find(R"(,"audio_base64":")");
        const auto event = nlohmann::json::parse(
            audio == std::string::npos ? req.body : req.body.substr(0, audio) + "}}", nullptr,
            false);
        if (!event.is_object() || !event.contains("data")) return {};
        const auto& data = event["data"];
        return data.value("task_id", std::string()) + "#" +
               std::to_string(data.value("item_index", -1));
    }

    std::mutex mutex_;
    int status_ = 200;
    Script script_;
    std::chrono::milliseconds delay_{0};
    std::map<std::string, std::string> reply_headers_;
    int hits_ = 0;
    std::set<int> connections_;
    std::map<std::string, int> hits_by_id_;
    std::map<std::string, int> hits_by_item_;
    std::string last_body_;
    httplib::Headers last_headers_;
    httplib::Server server_;
    int port_ = 0;
    std::thread thread_;
};

}  // namespace voxq::test
