// The HTTP service on cpp-httplib. Every /v1 handler runs through respond(),
// the one place where voxq's typed errors become HTTP statuses.
#include "voxq/server.hpp"

#include <httplib.h>
#include <openssl/crypto.h>

#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "dashboard_html.hpp"
#include "queue/env_values.hpp"
#include "queue/task_json.hpp"
#include "server/metrics.hpp"
#include "voxq/errors.hpp"
#include "voxq/json.hpp"
#include "voxq/webhook.hpp"
#include "webhook/http_listener.hpp"

namespace voxq {

namespace {

using nlohmann::json;

void send_error(httplib::Response& res, int status, const std::string& code,
                const std::string& message) {
    res.status = status;
    res.set_content(json{{"error", {{"code", code}, {"message", message}}}}.dump(),
                    "application/json");
}

// Runs a handler; maps voxq's errors to statuses (SPEC §8).
template <typename F>
void respond(httplib::Response& res, F&& handler) {
    try {
        handler();
    } catch (const ValidationError& e) {
        send_error(res, 400, "invalid_request", e.what());
    } catch (const TaskNotFoundError& e) {
        send_error(res, 404, "not_found", e.what());
    } catch (const InvalidStateTransitionError& e) {
        send_error(res, 409, "invalid_transition", e.what());
    } catch (const DuplicateTaskError& e) {
        send_error(res, 409, "duplicate", e.what());
    } catch (const StoreError& e) {
        send_error(res, 503, "store_unavailable", e.what());
    } catch (const json::exception&) {
        send_error(res, 400, "invalid_request", "body: not valid JSON");
    } catch (const std::exception& e) {
        send_error(res, 500, "internal", e.what());
    }
}

bool is_loopback_host(const std::string& host) {
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool same_secret(const std::string& given, const std::string& expected) {
    // Constant time in the content; the length of the token is not a secret.
    return given.size() == expected.size() &&
           CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

std::optional<TaskState> parse_state(const std::string& text) {
    std::string upper = text;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (TaskState s : kAllTaskStates) {
        if (to_string(s) == upper) return s;
    }
    return std::nullopt;
}

std::int64_t parse_limit(const std::string& text) {
    std::int64_t limit = 0;
    try {
        limit = parse_integer("limit", text);
    } catch (const ConfigError&) {
        throw ValidationError("limit: '" + text.substr(0, 32) + "' is not an integer");
    }
    if (limit < 1 || limit > 1000) throw ValidationError("limit: must be 1..1000");
    return limit;
}

// Deliveries the inbox keeps for the dashboard to play, newest last.
struct InboxEntry {
    std::string id;
    std::string content_type;
    std::string body;
};

}  // namespace

ServerConfig ServerConfig::from_env() {
    ServerConfig c;
    auto size_setting = [](const char* name, std::size_t& field, std::int64_t max) {
        const char* v = std::getenv(name);
        if (v == nullptr) return;
        const std::int64_t n = parse_integer(name, v);
        if (n < 1 || n > max)
            throw ConfigError(std::string(name) + ": '" + v + "' must be 1.." +
                              std::to_string(max));
        field = static_cast<std::size_t>(n);
    };
    if (const char* v = std::getenv("VOXQ_API_TOKEN")) c.api_token = v;
    size_setting("VOXQ_API_MAX_BODY_BYTES", c.max_body_bytes, std::int64_t{1} << 30);
    size_setting("VOXQ_API_MAX_TASKS", c.max_tasks_per_request, 100'000);
    c.inbox_secrets = WebhookConfig::from_env().secrets;
    return c;
}

void ServerConfig::validate() const {
    if (!is_loopback_host(host) && api_token.empty()) {
        throw ConfigError("listening on " + host +
                          " (beyond loopback) needs VOXQ_API_TOKEN: every /v1 call would be "
                          "open to the network");
    }
    if (!api_token.empty() && api_token.size() < 16)
        throw ConfigError("VOXQ_API_TOKEN: use at least 16 characters");
}

struct ApiServer::Impl {
    WorkerQueue& queue;
    ServerConfig config;
    const Worker* worker;
    std::shared_ptr<SpeechEngine> engines;
    httplib::Server http;
    std::unique_ptr<HttpListener> listener;  // after `http`: stops it before it goes

    std::mutex inbox_mutex;
    std::deque<InboxEntry> inbox;  // guarded by inbox_mutex
    std::size_t inbox_bytes = 0;   // guarded by inbox_mutex

    Impl(WorkerQueue& q, ServerConfig c, const Worker* w, std::shared_ptr<SpeechEngine> e)
        : queue(q), config(std::move(c)), worker(w), engines(std::move(e)) {}

    bool authorized(const httplib::Request& req) const {
        if (config.api_token.empty()) return true;
        const std::string header = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        if (header.rfind(prefix, 0) == 0 &&
            same_secret(header.substr(prefix.size()), config.api_token))
            return true;
        // <audio src> cannot send headers: the inbox also takes ?access_token=.
        return req.has_param("access_token") &&
               same_secret(req.get_param_value("access_token"), config.api_token);
    }

    void post_tasks(const httplib::Request& req, httplib::Response& res) {
        const json body = json::parse(req.body);
        const json* list = nullptr;
        if (body.is_array()) list = &body;
        if (body.is_object() && body.contains("tasks")) list = &body["tasks"];
        std::vector<Task> tasks;
        if (list != nullptr) {
            if (!list->is_array()) throw ValidationError("tasks: must be an array");
            if (list->empty()) throw ValidationError("tasks: at least one task is needed");
            if (list->size() > config.max_tasks_per_request)
                throw ValidationError("tasks: at most " +
                                      std::to_string(config.max_tasks_per_request) +
                                      " per request (VOXQ_API_MAX_TASKS)");
            tasks.reserve(list->size());
            for (std::size_t i = 0; i < list->size(); ++i)
                tasks.push_back(detail::task_from_json_value((*list)[i], i));
        } else if (body.is_object()) {
            tasks.push_back(detail::task_from_json_value(body, 0));
        } else {
            throw ValidationError(
                "body: must be a task object, an array of tasks or {\"tasks\": [...]}");
        }
        const std::size_t created = queue.enqueue(tasks);
        res.status = 201;
        if (list == nullptr) {
            res.set_content(task_to_json(tasks[0]), "application/json");
            return;
        }
        std::string out = "{\"created\":" + std::to_string(created) + ",\"tasks\":[";
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            if (i > 0) out += ',';
            out += task_to_json(tasks[i]);
        }
        out += "]}";
        res.set_content(out, "application/json");
    }

    void list_tasks(const httplib::Request& req, httplib::Response& res) {
        TaskFilter filter;
        if (req.has_param("state") && !req.get_param_value("state").empty()) {
            const std::string text = req.get_param_value("state");
            filter.state = parse_state(text);
            if (!filter.state)
                throw ValidationError("state: '" + text.substr(0, 32) +
                                      "' is not one of PENDING, PROCESSING, COMPLETED, RETRYABLE, "
                                      "CANCELLED, DISCARDED");
        }
        if (req.has_param("queue")) filter.queue = req.get_param_value("queue");
        const std::int64_t limit =
            req.has_param("limit") ? parse_limit(req.get_param_value("limit")) : 50;
        const std::string cursor = req.has_param("cursor") ? req.get_param_value("cursor") : "";
        res.set_content(task_page_to_json(queue.list_tasks(filter, limit, cursor)),
                        "application/json");
    }

    void transition(const std::string& id, const std::string& action, httplib::Response& res) {
        if (action == "cancel") queue.mark_as_cancelled(id);
        if (action == "resume") queue.mark_as_resume(id);
        if (action == "discard")
            queue.mark_as_discarded(id, std::nullopt, "discarded by an operator");
        res.set_content(task_to_json(queue.get_task(id), true), "application/json");
    }

    void inbox_post(const httplib::Request& req, httplib::Response& res) {
        const std::string id = req.get_header_value("webhook-id");
        if (id.empty() || id.size() > 200) {
            send_error(res, 400, "invalid_request", "webhook-id: missing");
            return;
        }
        if (!config.inbox_secrets.empty()) {
            const std::string problem = webhook_signature_problem(
                config.inbox_secrets, id, req.get_header_value("webhook-timestamp"), req.body,
                req.get_header_value("webhook-signature"),
                static_cast<std::int64_t>(queue.clock().now_seconds()));
            if (!problem.empty()) {
                send_error(res, 401, "unauthorized", "signature: " + problem);
                return;
            }
        }
        std::lock_guard lock(inbox_mutex);
        inbox.push_back({id, req.get_header_value("Content-Type"), req.body});
        inbox_bytes += req.body.size();
        while (inbox_bytes > config.inbox_max_bytes && inbox.size() > 1) {
            inbox_bytes -= inbox.front().body.size();
            inbox.pop_front();
        }
        res.set_content("{\"saved\":true}", "application/json");
    }

    void inbox_get(const std::string& id, httplib::Response& res) {
        std::lock_guard lock(inbox_mutex);
        for (auto it = inbox.rbegin(); it != inbox.rend(); ++it) {
            if (it->id == id) {
                res.set_content(it->body, it->content_type);
                return;
            }
        }
        send_error(res, 404, "not_found", "nothing delivered to the inbox as " + id);
    }

    void routes() {
        http.set_payload_max_length(config.max_body_bytes);
        // Headers and body go out in separate writes: without NODELAY, Nagle and
        // the client's delayed ACK add 40 ms to every response.
        http.set_tcp_nodelay(true);
        // Enough threads for many keep-alive clients at once (a thread serves one
        // connection while it stays open). httplib's API takes ownership of a raw
        // pointer and deletes it.
        http.new_task_queue = [] {
            // NOLINTNEXTLINE(cppcoreguidelines-owning-memory)
            return new httplib::ThreadPool(32);
        };
        http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            const bool guarded = req.path.rfind("/v1/", 0) == 0 ||
                                 (req.path.rfind("/inbox/", 0) == 0 && req.method == "GET");
            if (guarded && !authorized(req)) {
                res.set_header("WWW-Authenticate", "Bearer");
                send_error(res, 401, "unauthorized",
                           "this server needs Authorization: Bearer <VOXQ_API_TOKEN>");
                return httplib::Server::HandlerResponse::Handled;
            }
            return httplib::Server::HandlerResponse::Unhandled;
        });
        http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
            if (!res.body.empty()) return;  // a handler already said what went wrong
            if (res.status == 413) {
                send_error(res, 413, "too_large", "body: larger than VOXQ_API_MAX_BODY_BYTES");
            } else if (res.status == 404) {
                send_error(res, 404, "not_found", "no route " + req.method + " " + req.path);
            } else {
                send_error(res, res.status, "error", "HTTP " + std::to_string(res.status));
            }
        });
        http.set_exception_handler(
            [](const httplib::Request&, httplib::Response& res, const std::exception_ptr&) {
                send_error(res, 500, "internal", "unexpected error");
            });

        http.Post("/v1/tasks", [this](const httplib::Request& req, httplib::Response& res) {
            respond(res, [&] { post_tasks(req, res); });
        });
        http.Get("/v1/tasks", [this](const httplib::Request& req, httplib::Response& res) {
            respond(res, [&] { list_tasks(req, res); });
        });
        http.Get(R"(/v1/tasks/([^/]+))",
                 [this](const httplib::Request& req, httplib::Response& res) {
                     respond(res, [&] {
                         res.set_content(task_to_json(queue.get_task(req.matches[1]), true),
                                         "application/json");
                     });
                 });
        http.Post(R"(/v1/tasks/([^/]+)/(cancel|resume|discard))",
                  [this](const httplib::Request& req, httplib::Response& res) {
                      respond(res, [&] { transition(req.matches[1], req.matches[2], res); });
                  });
        http.Get("/v1/stats", [this](const httplib::Request& req, httplib::Response& res) {
            respond(res, [&] {
                res.set_content(stats_to_json(queue.get_queue_stats(
                                    req.has_param("queue") ? req.get_param_value("queue") : "")),
                                "application/json");
            });
        });
        http.Get("/v1/voices", [this](const httplib::Request&, httplib::Response& res) {
            respond(res, [&] {
                const auto voices = engines ? engines->voices() : std::vector<std::string>{};
                res.set_content(json{{"voices", voices}}.dump(), "application/json");
            });
        });
        http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            respond(res, [&] {
                res.set_content(
                    render_metrics(queue.queue_overview(), worker ? &worker->counters() : nullptr),
                    "text/plain; version=0.0.4");
            });
        });
        http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
            try {
                (void)queue.get_queue_stats();
                res.set_content("{\"status\":\"ok\"}", "application/json");
            } catch (const QueueError& e) {
                send_error(res, 503, "store_unavailable", e.what());
            }
        });
        http.Get("/", [](const httplib::Request&, httplib::Response& res) {
            res.set_header(
                "Content-Security-Policy",
                "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                "script-src 'self' 'unsafe-inline'; media-src 'self'; img-src 'self' data:");
            res.set_content(kDashboardHtml, "text/html; charset=utf-8");
        });
        http.Post("/inbox", [this](const httplib::Request& req, httplib::Response& res) {
            inbox_post(req, res);
        });
        http.Get(R"(/inbox/([A-Za-z0-9._-]+))",
                 [this](const httplib::Request& req, httplib::Response& res) {
                     inbox_get(req.matches[1], res);
                 });
    }
};

ApiServer::ApiServer(WorkerQueue& queue, ServerConfig config, const Worker* worker,
                     std::shared_ptr<SpeechEngine> engines)
    : impl_(std::make_unique<Impl>(queue, std::move(config), worker, std::move(engines))) {
    impl_->config.validate();
    impl_->routes();
    impl_->listener = std::make_unique<HttpListener>(impl_->http, impl_->config.host,
                                                     impl_->config.port, "serve");
}

ApiServer::~ApiServer() {
    stop();
}

int ApiServer::port() const {
    return impl_->listener->port();
}

void ApiServer::start() {
    impl_->listener->start();
}

void ApiServer::run() {
    impl_->listener->run();
}

void ApiServer::stop() {
    impl_->listener->stop();
}

}  // namespace voxq
