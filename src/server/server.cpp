// The HTTP service on voxq's bounded HTTP server (util/http_server). Requests
// are judged in two steps: admit() sees only the head (route, method, Host and
// Origin, token, content type, body limit) and may answer before any body byte
// is read; handle() runs the route. respond() is the one place where voxq's typed
// errors become HTTP statuses.
#include "voxq/server.hpp"

#include <openssl/crypto.h>

#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/json_bounds.hpp"
#include "dashboard_html.hpp"
#include "openapi_json.hpp"
#include "server/api_service.hpp"
#include "server/metrics.hpp"
#include "util/env.hpp"
#include "util/http_server.hpp"
#include "util/text.hpp"
#include "voxq/errors.hpp"
#include "voxq/json.hpp"
#include "voxq/webhook.hpp"

namespace voxq {

namespace {

using nlohmann::json;

http::Response error_response(int status, const std::string& code, const std::string& message) {
    http::Response res;
    res.status = status;
    res.body = json{{"error", {{"code", code}, {"message", truncate_utf8(message, 2000)}}}}.dump(
        -1, ' ', false, json::error_handler_t::replace);
    return res;
}

// The code for each status the service (or its HTTP layer) answers with.
std::string code_for(int status) {
    switch (status) {
        case 400:
            return "invalid_request";
        case 401:
            return "unauthorized";
        case 403:
            return "forbidden";
        case 404:
            return "not_found";
        case 405:
            return "method_not_allowed";
        case 408:
            return "timeout";
        case 409:
            return "conflict";
        case 413:
            return "too_large";
        case 415:
            return "unsupported_media_type";
        case 431:
            return "headers_too_large";
        case 503:
            return "unavailable";
        default:
            return "internal";
    }
}

// Runs a handler; maps voxq's errors to statuses (SPEC §8).
template <typename F>
http::Response respond(Logger& log, const http::Request& req, F&& handler) {
    try {
        return handler();
    } catch (const ValidationError& e) {
        return error_response(400, "invalid_request", e.what());
    } catch (const TaskNotFoundError& e) {
        return error_response(404, "not_found", e.what());
    } catch (const InvalidStateTransitionError& e) {
        return error_response(409, "invalid_transition", e.what());
    } catch (const DuplicateTaskError& e) {
        return error_response(409, "duplicate", e.what());
    } catch (const StoreError& e) {
        log.warning("request failed: the store is unavailable",
                    {{"method", req.method}, {"path", req.path}, {"error", e.what()}});
        return error_response(503, "store_unavailable", e.what());
    } catch (const json::parse_error& e) {
        return error_response(400, "invalid_request",
                              std::string("body: not valid JSON (") + e.what() + ")");
    } catch (const std::exception& e) {
        // Our own failure (never the client's): no detail that could leak to
        // the client; the operator's log has it.
        log.error("request failed unexpectedly",
                  {{"method", req.method}, {"path", req.path}, {"error", e.what()}});
        return error_response(500, "internal", "unexpected error");
    }
}

http::Response json_response(std::string body, int status = 200) {
    http::Response res;
    res.status = status;
    res.body = std::move(body);
    return res;
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(text[i])) !=
            std::tolower(static_cast<unsigned char>(prefix[i])))
            return false;
    }
    return true;
}

// The host part of a Host header ("127.0.0.1:8080", "[::1]:80", "localhost").
std::string host_without_port(std::string_view value) {
    if (!value.empty() && value.front() == '[') {
        const std::size_t close = value.find(']');
        return close == std::string_view::npos ? std::string(value)
                                               : std::string(value.substr(0, close + 1));
    }
    return std::string(value.substr(0, value.find(':')));
}

bool same_secret(const std::string& given, const std::string& expected) {
    // Constant time in the content; the length of the token is not a secret.
    return given.size() == expected.size() &&
           CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

std::int64_t parse_limit(const std::string& text) {
    std::int64_t limit = 0;
    try {
        limit = env::parse_integer("limit", text);
    } catch (const ConfigError&) {
        throw ValidationError("limit: '" + truncate_utf8(text, 32) + "' is not an integer");
    }
    if (limit < 1 || limit > 1000) throw ValidationError("limit: must be 1..1000");
    return limit;
}

// Deliveries the inbox keeps for the dashboard to play, newest last: the audio
// of item N of a task under "<task id>.<N>", anything else under its webhook-id.
struct InboxEntry {
    std::string id;
    std::string body;
    [[nodiscard]] std::size_t cost() const { return id.size() + body.size() + 64; }
};

enum class Route {
    Tasks,       // POST, GET /v1/tasks
    Task,        // GET /v1/tasks/{id}
    Transition,  // POST /v1/tasks/{id}/cancel|resume|discard
    Stats,
    Voices,
    OpenApi,
    Metrics,
    Health,
    Dashboard,
    InboxPost,  // POST /inbox
    InboxGet,   // GET /inbox/{webhook-id}
};

struct Match {
    Route route;
    std::string allow;  // methods, for 405
    std::string id;
    std::string action;
};

// The route for a (decoded) path, whatever the method.
std::optional<Match> match(const std::string& path) {
    if (path == "/v1/tasks") return Match{Route::Tasks, "GET, POST", "", ""};
    if (path.rfind("/v1/tasks/", 0) == 0) {
        const std::string rest = path.substr(10);
        const std::size_t slash = rest.find('/');
        if (rest.empty()) return std::nullopt;
        if (slash == std::string::npos) return Match{Route::Task, "GET", rest, ""};
        const std::string action = rest.substr(slash + 1);
        if (slash == 0 || (action != "cancel" && action != "resume" && action != "discard"))
            return std::nullopt;
        return Match{Route::Transition, "POST", rest.substr(0, slash), action};
    }
    if (path == "/v1/stats") return Match{Route::Stats, "GET", "", ""};
    if (path == "/v1/voices") return Match{Route::Voices, "GET", "", ""};
    if (path == "/v1/openapi.json") return Match{Route::OpenApi, "GET", "", ""};
    if (path == "/metrics") return Match{Route::Metrics, "GET", "", ""};
    if (path == "/healthz") return Match{Route::Health, "GET", "", ""};
    if (path == "/") return Match{Route::Dashboard, "GET", "", ""};
    if (path == "/inbox") return Match{Route::InboxPost, "POST", "", ""};
    if (path.rfind("/inbox/", 0) == 0 && path.size() > 7)
        return Match{Route::InboxGet, "GET", path.substr(7), ""};
    return std::nullopt;
}

bool method_allowed(const Match& m, const std::string& method) {
    const std::string effective = method == "HEAD" ? "GET" : method;
    std::string_view allow = m.allow;
    while (!allow.empty()) {
        const std::size_t comma = allow.find(',');
        std::string_view one = allow.substr(0, comma);
        while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
        if (one == effective) return true;
        if (comma == std::string_view::npos) break;
        allow.remove_prefix(comma + 1);
    }
    return false;
}

}  // namespace

ServerConfig ServerConfig::from_env() {
    ServerConfig c;
    const env::Reader vars;
    auto size_setting = [&](const char* name, std::size_t& field, std::int64_t max) {
        if (auto n = vars.integer(name, 1, max)) field = static_cast<std::size_t>(*n);
    };
    c.api_token = vars.text("VOXQ_API_TOKEN").value_or("");
    size_setting("VOXQ_API_MAX_BODY_BYTES", c.max_body_bytes, std::int64_t{64} << 20);
    size_setting("VOXQ_API_MAX_TASKS", c.max_tasks_per_request, 100'000);
    size_setting("VOXQ_API_MAX_CONNECTIONS", c.max_connections, 100'000);
    size_setting("VOXQ_API_MAX_CONNECTIONS_PER_CLIENT", c.max_connections_per_client, 100'000);
    size_setting("VOXQ_API_HEADER_TIMEOUT", c.header_timeout_seconds, 300);
    size_setting("VOXQ_API_THREADS", c.threads, 1024);
    c.inbox_secrets = WebhookConfig::from_env().secrets;
    return c;
}

void ServerConfig::validate() const {
    if (!http::is_loopback_host(host) && api_token.empty()) {
        throw ConfigError("listening on " + host +
                          " (beyond loopback) needs VOXQ_API_TOKEN: every /v1 call would be "
                          "open to the network");
    }
    if (!api_token.empty() && api_token.size() < 16)
        throw ConfigError("VOXQ_API_TOKEN: use at least 16 characters");
    if (port < 0 || port > 65535)
        throw ConfigError("port: " + std::to_string(port) + " is not in 1..65535");
}

struct ApiService::Impl {
    WorkerQueue& queue;
    ServerConfig config;
    const Worker* worker;
    std::shared_ptr<SpeechEngine> engines;

    std::mutex inbox_mutex;
    std::deque<InboxEntry> inbox;  // guarded by inbox_mutex
    std::size_t inbox_bytes = 0;   // guarded by inbox_mutex

    Impl(WorkerQueue& q, ServerConfig c, const Worker* w, std::shared_ptr<SpeechEngine> e)
        : queue(q), config(std::move(c)), worker(w), engines(std::move(e)) {}

    [[nodiscard]] bool has_valid_token(const http::Request& req) const {
        if (config.api_token.empty()) return false;
        const std::string header = req.header("authorization");
        // RFC 7235: the scheme is case-insensitive.
        return iequals_prefix(header, "Bearer ") && same_secret(header.substr(7), config.api_token);
    }

    // Admission on the head alone (SPEC §8). An answer here closes the connection.
    std::optional<http::Response> admit(const http::Request& req, std::size_t& body_limit) {
        if (config.api_token.empty()) {
            // Loopback without a token: only pages of this service may drive it
            // (no CSRF from other sites, no DNS rebinding).
            const std::string host = host_without_port(req.header("host"));
            if (!http::is_loopback_host(host))
                return error_response(403, "forbidden",
                                      "Host: not a loopback name; without VOXQ_API_TOKEN this "
                                      "service answers only to 127.0.0.1, [::1] and localhost");
            if (req.has_header("origin") && req.header("origin") != "http://" + req.header("host"))
                return error_response(403, "forbidden",
                                      "Origin: requests from other sites are refused");
        }
        const auto m = match(req.path);
        if (!m) {
            return error_response(
                404, "not_found",
                "no route " + truncate_utf8(req.method, 16) + " " + truncate_utf8(req.path, 200));
        }
        if (!method_allowed(*m, req.method)) {
            http::Response res = error_response(
                405, "method_not_allowed",
                truncate_utf8(req.method, 16) + " is not allowed here; allowed: " + m->allow);
            res.headers.emplace_back("Allow", m->allow);
            return res;
        }
        const bool v1 = req.path.rfind("/v1/", 0) == 0;
        const bool guarded = v1 || m->route == Route::InboxGet;
        if (guarded && !config.api_token.empty() && !has_valid_token(req)) {
            http::Response res = error_response(
                401, "unauthorized", "this server needs Authorization: Bearer <VOXQ_API_TOKEN>");
            res.headers.emplace_back("WWW-Authenticate", "Bearer");
            return res;
        }
        if (m->route == Route::InboxPost) {
            if (config.inbox_secrets.empty() && !has_valid_token(req))
                return error_response(401, "unauthorized",
                                      "inbox: deliveries need a Standard Webhooks signature "
                                      "(VOXQ_WEBHOOK_SECRET) or the API token");
            body_limit = std::min(body_limit, config.inbox_max_entry_bytes);
            return std::nullopt;
        }
        if (req.method == "POST" && m->route == Route::Tasks) {
            if (media_type(req.header("content-type")) != "application/json")
                return error_response(415, "unsupported_media_type",
                                      "Content-Type: writes need application/json");
            body_limit = std::min(body_limit, config.max_body_bytes);
            return std::nullopt;
        }
        // Other routes take no body: a small one is read and ignored.
        body_limit = std::min<std::size_t>(body_limit, std::size_t{64} * 1024);
        return std::nullopt;
    }

    http::Response handle(http::Request& req) {
        const auto m = match(req.path);
        if (!m) return error_response(404, "not_found", "no route");
        switch (m->route) {
            case Route::Tasks:
                return respond(queue.logger(), req,
                               [&] { return req.method == "POST" ? post_tasks(req) : list(req); });
            case Route::Task:
                return respond(queue.logger(), req, [&] {
                    return json_response(task_to_json(queue.get_task(m->id), true));
                });
            case Route::Transition:
                return respond(queue.logger(), req, [&] { return transition(m->id, m->action); });
            case Route::Stats:
                return respond(queue.logger(), req, [&] {
                    return json_response(
                        stats_to_json(queue.get_queue_stats(req.param("queue").value_or(""))));
                });
            case Route::Voices:
                return respond(queue.logger(), req, [&] {
                    const auto voices = engines ? engines->voices() : std::vector<std::string>{};
                    return json_response(json{{"voices", voices}}.dump(
                        -1, ' ', false, json::error_handler_t::replace));
                });
            case Route::OpenApi:
                return json_response(std::string(kOpenApiJson));
            case Route::Metrics:
                return respond(queue.logger(), req, [&] {
                    http::Response res;
                    res.content_type = "text/plain; version=0.0.4";
                    res.body = render_metrics(queue.queue_overview(), queue.store_damage().empty(),
                                              worker ? &worker->counters() : nullptr);
                    return res;
                });
            case Route::Health:
                return health(req);
            case Route::Dashboard:
                return dashboard();
            case Route::InboxPost:
                return inbox_post(req);
            case Route::InboxGet:
                return inbox_get(m->id);
        }
        return error_response(404, "not_found", "no route");
    }

    http::Response post_tasks(const http::Request& req) {
        // Each task costs a few dozen JSON values at most; anything beyond is refused
        // by a linear pass before any value is built.
        check_json_bounds(req.body, config.max_tasks_per_request * 64 + 64, 16, "body",
                          " (VOXQ_API_MAX_TASKS bounds a request)");
        TaskBody parsed;
        try {
            parsed = tasks_from_json_body(req.body, config.max_tasks_per_request);
        } catch (const ValidationError& e) {
            const std::string message = e.what();
            if (message.rfind("tasks: at most", 0) != 0) throw;
            throw ValidationError(message + " (VOXQ_API_MAX_TASKS)");
        }
        std::vector<Task>& tasks = parsed.tasks;
        const bool single = parsed.single;
        const std::size_t created = queue.enqueue(tasks);
        if (single) return json_response(task_to_json(tasks[0]), 201);
        std::string out = "{\"created\":" + std::to_string(created) + ",\"tasks\":[";
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            if (i > 0) out += ',';
            out += task_to_json(tasks[i]);
        }
        out += "]}";
        return json_response(std::move(out), 201);
    }

    http::Response list(const http::Request& req) {
        TaskFilter filter;
        if (auto state = req.param("state"); state && !state->empty()) {
            filter.state = task_state_from(*state, "state");
        }
        if (auto queue_name = req.param("queue")) filter.queue = *queue_name;
        const auto limit_text = req.param("limit");
        const std::int64_t limit = limit_text ? parse_limit(*limit_text) : 50;
        return json_response(
            task_page_to_json(queue.list_tasks(filter, limit, req.param("cursor").value_or(""))));
    }

    http::Response transition(const std::string& id, const std::string& action) {
        if (action == "cancel") queue.mark_as_cancelled(id);
        if (action == "resume") queue.mark_as_resume(id);
        if (action == "discard")
            queue.mark_as_discarded(id, std::nullopt, "discarded by an operator");
        return json_response(task_to_json(queue.get_task(id), true));
    }

    http::Response health(const http::Request& req) {
        // The store's own words only for those holding the token.
        const bool detail = config.api_token.empty() ? false : has_valid_token(req);
        try {
            (void)queue.get_queue_stats();
            if (const std::string damage = queue.store_damage(); !damage.empty()) {
                return error_response(503, "store_damaged",
                                      detail ? damage
                                             : std::string("the store is damaged and refuses "
                                                           "writes: run `voxq check`"));
            }
            return json_response("{\"status\":\"ok\"}");
        } catch (const std::exception& e) {
            return error_response(
                503, "store_unavailable",
                detail ? redact_credentials(e.what()) : std::string("the store cannot be read"));
        }
    }

    static http::Response dashboard() {
        http::Response res;
        res.content_type = "text/html; charset=utf-8";
        res.headers.emplace_back(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' "
            "'unsafe-inline'; media-src 'self' blob:; img-src 'self' data:; frame-ancestors "
            "'none'; base-uri 'none'; form-action 'self'");
        res.headers.emplace_back("X-Frame-Options", "DENY");
        res.headers.emplace_back("X-Content-Type-Options", "nosniff");
        res.headers.emplace_back("Referrer-Policy", "no-referrer");
        res.body = kDashboardHtml;
        return res;
    }

    http::Response inbox_post(http::Request& req) {
        const std::string id = req.header("webhook-id");
        if (id.empty() || id.size() > 200 || !is_valid_utf8(id))
            return error_response(400, "invalid_request",
                                  "webhook-id: missing or not 1..200 characters");
        if (!has_valid_token(req)) {
            const std::string problem =
                webhook_signature_problem(config.inbox_secrets, id, req.header("webhook-timestamp"),
                                          req.body, req.header("webhook-signature"),
                                          static_cast<std::int64_t>(queue.clock().now_seconds()));
            if (!problem.empty())
                return error_response(401, "unauthorized", "signature: " + problem);
        }
        // Either payload kind (SPEC §7): the audio is kept, under its task and item.
        std::string key = id;
        try {
            if (std::optional<ReceivedDelivery> d = unwrap_delivery(
                    [&req](const std::string& name) { return req.header(name); }, req.body)) {
                key = d->task_id + "." + std::to_string(d->item_index);
                req.body = std::move(d->audio);
            }
        } catch (const ValidationError& e) {
            return error_response(400, "invalid_request", e.what());
        }
        std::lock_guard lock(inbox_mutex);
        for (auto it = inbox.begin(); it != inbox.end(); ++it) {
            if (it->id == key) {  // a retried delivery replaces the one before
                inbox_bytes -= it->cost();
                inbox.erase(it);
                break;
            }
        }
        inbox.push_back({std::move(key), std::move(req.body)});
        inbox_bytes += inbox.back().cost();
        while (inbox.size() > 1 &&
               (inbox_bytes > config.inbox_max_bytes || inbox.size() > config.inbox_max_entries)) {
            inbox_bytes -= inbox.front().cost();
            inbox.pop_front();
        }
        return json_response("{\"saved\":true}");
    }

    http::Response inbox_get(const std::string& id) {
        std::lock_guard lock(inbox_mutex);
        for (auto it = inbox.rbegin(); it != inbox.rend(); ++it) {
            if (it->id == id) {
                // Served as bytes, never as what the sender said it was: nothing a
                // sender stored can run as a page of this origin.
                http::Response res;
                res.content_type = "application/octet-stream";
                res.headers.emplace_back("X-Content-Type-Options", "nosniff");
                res.headers.emplace_back("Content-Security-Policy", "default-src 'none'; sandbox");
                res.body = it->body;
                return res;
            }
        }
        return error_response(404, "not_found",
                              "nothing delivered to the inbox as " + truncate_utf8(id, 200));
    }
};

ApiService::ApiService(WorkerQueue& queue, ServerConfig config, const Worker* worker,
                       std::shared_ptr<SpeechEngine> engines)
    : impl_(std::make_unique<Impl>(queue, std::move(config), worker, std::move(engines))) {
    impl_->config.validate();
}

ApiService::~ApiService() = default;

const ServerConfig& ApiService::config() const {
    return impl_->config;
}

http::Limits ApiService::limits() const {
    const ServerConfig& c = impl_->config;
    http::Limits limits;
    // The largest body any route takes; each route lowers it in admit().
    limits.max_body_bytes = std::max(c.max_body_bytes, c.inbox_max_entry_bytes);
    limits.max_body_bytes_in_flight = std::max(c.max_body_bytes_in_flight, limits.max_body_bytes);
    limits.max_connections = c.max_connections;
    limits.max_connections_per_client = c.max_connections_per_client;
    limits.header_timeout = std::chrono::seconds(c.header_timeout_seconds);
    limits.threads = c.threads;
    return limits;
}

http::Handlers ApiService::handlers() {
    http::Handlers handlers;
    Impl* impl = impl_.get();
    handlers.admit = [impl](const http::Request& req, std::size_t& limit) {
        return impl->admit(req, limit);
    };
    handlers.handle = [impl](http::Request& req) { return impl->handle(req); };
    handlers.error = [](int status, const std::string& message) {
        // The HTTP layer names the limit; say which setting moves it.
        return error_response(
            status, code_for(status),
            status == 413 ? message + " (VOXQ_API_MAX_BODY_BYTES for /v1/tasks)" : message);
    };
    return handlers;
}

struct ApiServer::Impl {
    ApiService service;
    http::Server http;  // after the service: stops before what its handlers use

    Impl(WorkerQueue& q, ServerConfig c, const Worker* w, std::shared_ptr<SpeechEngine> e)
        : service(q, std::move(c), w, std::move(e)),
          http(service.config().host, service.config().port, service.limits(), service.handlers(),
               "serve") {}
};

ApiServer::ApiServer(WorkerQueue& queue, ServerConfig config, const Worker* worker,
                     std::shared_ptr<SpeechEngine> engines)
    : impl_(std::make_unique<Impl>(queue, std::move(config), worker, std::move(engines))) {}

ApiServer::~ApiServer() {
    stop();
}

int ApiServer::port() const {
    return impl_->http.port();
}

void ApiServer::start() {
    impl_->http.start();
}

void ApiServer::run() {
    impl_->http.run();
}

void ApiServer::stop() {
    impl_->http.stop();
}

}  // namespace voxq
