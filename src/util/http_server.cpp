#include "util/http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "voxq/errors.hpp"

namespace voxq::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Parser = bhttp::request_parser<bhttp::string_body>;

namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

Request make_head(const Parser& parser, std::string client) {
    const auto& msg = parser.get();
    Request r;
    r.method = std::string(msg.method_string());
    r.target = std::string(msg.target());
    const std::size_t q = r.target.find('?');
    r.path = percent_decode(std::string_view(r.target).substr(0, q), false);
    if (q != std::string::npos) r.query = parse_query(std::string_view(r.target).substr(q + 1));
    for (const auto& field : msg) {
        std::string name(field.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    r.client = std::move(client);
    return r;
}

// The framing rules of SPEC §8 beyond what Beast's parser refuses by itself.
std::optional<std::pair<int, std::string>> framing_problem(const Request& head) {
    if (head.target.empty() || head.target.front() != '/')
        return std::pair{400, "request target: must be a path starting with /"};
    std::size_t lengths = 0;
    std::size_t codings = 0;
    for (const auto& [name, value] : head.headers) {
        if (name == "content-length") ++lengths;
        if (name == "transfer-encoding") {
            ++codings;
            if (!iequals(trim(value), "chunked"))
                return std::pair{400, "Transfer-Encoding: only 'chunked' is accepted"};
        }
        if (name == "content-encoding" && !iequals(trim(value), "identity"))
            return std::pair{415, "Content-Encoding: compressed bodies are not accepted"};
    }
    if (lengths > 1) return std::pair{400, "Content-Length: sent more than once"};
    if (codings > 1) return std::pair{400, "Transfer-Encoding: sent more than once"};
    if (lengths > 0 && codings > 0)
        return std::pair{400, "Content-Length and Transfer-Encoding: send one of them"};
    return std::nullopt;
}

std::pair<int, std::string> too_large(std::size_t body_limit) {
    return {413, "body: larger than " + std::to_string(body_limit) + " bytes, this route's limit"};
}

// `body_limit`: the limit in force, which a 413 names.
std::pair<int, std::string> parse_error(const beast::error_code& ec, std::size_t body_limit) {
    if (ec == bhttp::error::header_limit)
        return {431, "request line and headers: larger than the server accepts"};
    if (ec == bhttp::error::body_limit) return too_large(body_limit);
    return {400, "malformed HTTP request (" + ec.message() + ")"};
}

Response run_handler(Request& request, const Handlers& handlers) {
    try {
        return handlers.handle(request);
    } catch (const std::exception& e) {
        return handlers.error(500, "unexpected error");
    }
}

Response error_response(const Handlers& handlers, int status, const std::string& message) {
    Response r;
    try {
        r = handlers.error(status, message);
    } catch (const std::exception&) {
        r.status = status;
        r.content_type = "text/plain";
        r.body = "error\n";
    }
    return r;
}

bhttp::response<bhttp::string_body> to_beast(Response&& r, bool head_only, bool keep_alive) {
    bhttp::response<bhttp::string_body> out;
    out.version(11);
    out.result(static_cast<unsigned>(r.status));
    if (!r.content_type.empty()) out.set(bhttp::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers) out.insert(name, value);
    out.keep_alive(keep_alive);
    const std::size_t size = r.body.size();
    if (!head_only) out.body() = std::move(r.body);
    out.content_length(size);
    return out;
}

// The server-wide count of body bytes being read or handled.
class BodyBudget {
  public:
    explicit BodyBudget(std::size_t capacity) : capacity_(capacity) {}
    bool take(std::size_t n) {
        std::lock_guard lock(mutex_);
        if (n > capacity_ - used_) return false;
        used_ += n;
        return true;
    }
    void give(std::size_t n) {
        std::lock_guard lock(mutex_);
        used_ -= n;
    }

  private:
    std::mutex mutex_;
    std::size_t capacity_;
    std::size_t used_ = 0;  // guarded by mutex_
};

}  // namespace

// A literal IPv4 loopback address (127.0.0.0/8), in dotted decimal only.
namespace {
bool is_ipv4_loopback(std::string_view host) {
    int parts = 0;
    std::size_t i = 0;
    int first = -1;
    while (i <= host.size()) {
        std::size_t j = i;
        int value = 0;
        while (j < host.size() && host[j] >= '0' && host[j] <= '9' && j - i < 3)
            value = value * 10 + (host[j++] - '0');
        if (j == i || value > 255) return false;
        if (first < 0) first = value;
        ++parts;
        if (j == host.size()) break;
        if (host[j] != '.') return false;
        i = j + 1;
    }
    return parts == 4 && first == 127;
}

}  // namespace

bool is_loopback_host(std::string_view host) {
    return host == "localhost" || host == "::1" || host == "[::1]" || is_ipv4_loopback(host);
}

std::string Request::header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
        if (k == name) return v;
    }
    return {};
}

bool Request::has_header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
        if (k == name) return true;
    }
    return false;
}

std::optional<std::string> Request::param(std::string_view name) const {
    for (const auto& [k, v] : query) {
        if (k == name) return v;
    }
    return std::nullopt;
}

std::string percent_decode(std::string_view text, bool plus_is_space) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '%' && i + 2 < text.size()) {
            const int hi = hex_value(text[i + 1]);
            const int lo = hex_value(text[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += (plus_is_space && c == '+') ? ' ' : c;
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
    std::vector<std::pair<std::string, std::string>> out;
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view part = query.substr(0, amp);
        if (!part.empty()) {
            const std::size_t eq = part.find('=');
            out.emplace_back(percent_decode(part.substr(0, eq), true),
                             eq == std::string_view::npos
                                 ? std::string()
                                 : percent_decode(part.substr(eq + 1), true));
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return out;
}

std::vector<Response> handle_bytes(std::string_view bytes, const Limits& limits,
                                   const Handlers& handlers) {
    std::vector<Response> answers;
    while (!bytes.empty()) {
        Parser parser;
        parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
        parser.body_limit(limits.max_body_bytes);
        beast::error_code ec;
        auto feed = [&] {
            const std::size_t n = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
            bytes.remove_prefix(n);
        };
        while (!ec && !parser.is_header_done() && !bytes.empty()) feed();
        if (ec == bhttp::error::need_more || !parser.is_header_done()) return answers;
        if (ec) {
            auto [status, message] = parse_error(ec, limits.max_body_bytes);
            answers.push_back(error_response(handlers, status, message));
            return answers;
        }
        Request request = make_head(parser, "fuzz");
        if (auto problem = framing_problem(request)) {
            answers.push_back(error_response(handlers, problem->first, problem->second));
            return answers;
        }
        std::size_t body_limit = limits.max_body_bytes;
        if (auto early = handlers.admit(request, body_limit)) {
            answers.push_back(std::move(*early));
            return answers;
        }
        parser.body_limit(body_limit);
        while (!ec && !parser.is_done() && !bytes.empty()) feed();
        if (ec == bhttp::error::need_more || !parser.is_done()) return answers;
        if (ec) {
            auto [status, message] = parse_error(ec, body_limit);
            answers.push_back(error_response(handlers, status, message));
            return answers;
        }
        const bool keep_alive = parser.get().keep_alive();
        request.body = std::move(parser.get().body());
        answers.push_back(run_handler(request, handlers));
        if (answers.back().close || !keep_alive) return answers;
    }
    return answers;
}

struct Server::Impl {
    Limits limits;
    Handlers handlers;
    BodyBudget budget;
    std::mutex clients_mutex;
    std::size_t connections = 0;                    // guarded by clients_mutex
    std::map<std::string, std::size_t> per_client;  // guarded by clients_mutex
    asio::io_context ioc;                           // after what sessions use
    // On a strand: accept completions and stop()'s close never run at once.
    tcp::acceptor acceptor{asio::make_strand(ioc)};
    int port = 0;
    std::mutex threads_mutex;
    std::vector<std::thread> threads;  // guarded by threads_mutex (start's own threads)

    Impl(Limits l, Handlers h)
        : limits(l), handlers(std::move(h)), budget(l.max_body_bytes_in_flight) {}

    bool admit_connection(const std::string& client) {
        std::lock_guard lock(clients_mutex);
        if (connections >= limits.max_connections) return false;
        std::size_t& mine = per_client[client];
        if (mine >= limits.max_connections_per_client) {
            if (mine == 0) per_client.erase(client);
            return false;
        }
        ++mine;
        ++connections;
        return true;
    }
    void release_connection(const std::string& client) {
        std::lock_guard lock(clients_mutex);
        --connections;
        auto it = per_client.find(client);
        if (it != per_client.end() && --it->second == 0) per_client.erase(it);
    }

    void accept();
};

namespace {

constexpr std::size_t kBodyReadBytes = std::size_t{64} * 1024;  // Beast's largest read

class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(tcp::socket socket, Server::Impl& server, std::string client)
        : stream_(std::move(socket)), server_(server), client_(std::move(client)) {}
    ~Session() {
        release_body();
        server_.release_connection(client_);
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    void read_header() {
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(server_.limits.max_header_bytes));
        parser_->body_limit(server_.limits.max_body_bytes);
        stream_.expires_after(server_.limits.header_timeout);
        bhttp::async_read_header(stream_, buffer_, *parser_,
                                 [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                     self->on_header(ec);
                                 });
    }

  private:
    void on_header(beast::error_code ec) {
        if (ec == bhttp::error::header_limit || ec == bhttp::error::body_limit) {
            auto [status, message] = parse_error(ec, server_.limits.max_body_bytes);
            return fail(status, message);
        }
        if (ec) {
            // A client that went away or never finished its headers gets no answer.
            if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
                ec == asio::error::eof || ec == asio::error::operation_aborted ||
                ec == asio::error::connection_reset || buffer_.size() == 0) {
                if (ec == beast::error::timeout && buffer_.size() > 0) {
                    fail(408, "request headers: not received in time");
                    return;
                }
                return close_now();
            }
            auto [status, message] = parse_error(ec, server_.limits.max_body_bytes);
            return fail(status, message);
        }
        request_ = make_head(*parser_, client_);
        head_only_ = request_.method == "HEAD";
        if (auto problem = framing_problem(request_)) return fail(problem->first, problem->second);
        std::size_t body_limit = server_.limits.max_body_bytes;
        std::optional<Response> early;
        try {
            early = server_.handlers.admit(request_, body_limit);
        } catch (const std::exception&) {
            return fail(500, "unexpected error");
        }
        // The connection survives an early answer only when no body is pending.
        if (early)
            return send(std::move(*early),
                        early->close || !parser_->is_done() || !parser_->get().keep_alive());
        if (parser_->is_done()) return handle();
        std::size_t needed = body_limit;
        if (auto length = parser_->content_length()) {
            if (*length > body_limit) {
                auto [status, message] = too_large(body_limit);
                return fail(status, message);
            }
            needed = static_cast<std::size_t>(*length);
        }
        if (!server_.budget.take(needed))
            return fail(503, "busy: too many request bodies in flight; try again");
        reserved_ = needed;
        body_limit_ = body_limit;
        parser_->body_limit(body_limit);
        const std::string expect = request_.header("expect");
        if (iequals(trim(expect), "100-continue")) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            stream_.expires_after(server_.limits.write_timeout);
            asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                              [self = shared_from_this()](beast::error_code wec, std::size_t) {
                                  if (wec) return self->close_now();
                                  self->read_body();
                              });
            return;
        }
        read_body();
    }

    void read_body() {
        // Beast reads as much as the buffer has room for, at least 512 bytes and
        // at most 64 KiB: with no room reserved a 590 KB body took ~1,150 reads
        // of ~512 bytes, each with its own timer and wakeup (scripts/bench_sink.py).
        // The room is given back once the request is handled.
        buffer_.reserve(buffer_.size() + std::min(reserved_, kBodyReadBytes));
        stream_.expires_after(server_.limits.body_timeout);
        bhttp::async_read(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
    }

    void on_body(beast::error_code ec) {
        if (ec == beast::error::timeout) return fail(408, "body: not received in time");
        if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
            ec == asio::error::connection_reset)
            return close_now();
        if (ec) {
            auto [status, message] = parse_error(ec, body_limit_);
            return fail(status, message);
        }
        handle();
    }

    void handle() {
        const bool keep_alive = parser_->get().keep_alive();
        request_.body = std::move(parser_->get().body());
        parser_.reset();
        buffer_.shrink_to_fit();  // an idle connection holds no read room
        stream_.expires_never();
        Response response = run_handler(request_, server_.handlers);
        request_ = Request{};
        release_body();
        const bool close = response.close || !keep_alive;
        send(std::move(response), close);
    }

    void fail(int status, const std::string& message) {
        send(error_response(server_.handlers, status, message), true);
    }

    void send(Response response, bool close) {
        response_ = to_beast(std::move(response), head_only_, !close);
        stream_.expires_after(server_.limits.write_timeout);
        bhttp::async_write(stream_, response_,
                           [self = shared_from_this(), close](beast::error_code ec, std::size_t) {
                               self->response_ = {};
                               if (ec) return self->close_now();
                               if (close) return self->linger();
                               self->read_header();
                           });
    }

    // After an answer that ends the connection: stop sending, then read and drop
    // what the client still sends for a short while, so that closing with unread
    // data (a reset) cannot destroy the answer before the client reads it.
    void linger() {
        release_body();
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        // Up to the declared body (bounded) within a few seconds: a client still
        // sending a refused body reads the answer instead of a reset.
        drain_limit_ = std::size_t{1} << 20;
        if (parser_ && parser_->is_header_done() && parser_->content_length())
            drain_limit_ = std::max<std::size_t>(
                drain_limit_, std::min<std::uint64_t>(*parser_->content_length(), 256U << 20U));
        stream_.expires_after(std::chrono::seconds(5));
        drain_buffer_.resize(std::size_t{64} * 1024);
        drain();
    }
    void drain() {
        stream_.async_read_some(asio::buffer(drain_buffer_),
                                [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                    self->drained_ += n;
                                    if (ec || self->drained_ >= self->drain_limit_)
                                        return self->close_now();
                                    self->drain();
                                });
    }

    void close_now() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.close();
    }

    void release_body() {
        if (reserved_ > 0) server_.budget.give(reserved_);
        reserved_ = 0;
    }

    beast::tcp_stream stream_;
    Server::Impl& server_;
    std::string client_;
    beast::flat_buffer buffer_{std::size_t{1} << 20};
    std::optional<Parser> parser_;
    Request request_;
    bhttp::response<bhttp::string_body> response_;
    std::size_t reserved_ = 0;
    std::size_t body_limit_ = 0;  // of the request being read
    bool head_only_ = false;
    std::vector<char> drain_buffer_;
    std::size_t drained_ = 0;
    std::size_t drain_limit_ = 0;
};

}  // namespace

void Server::Impl::accept() {
    acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
        if (!ec) {
            beast::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            const auto peer = socket.remote_endpoint(ignored);
            const std::string client = ignored ? std::string("?") : peer.address().to_string();
            if (admit_connection(client)) {
                std::make_shared<Session>(std::move(socket), *this, client)->read_header();
            } else {
                // Over the cap: a short answer and the door closes (no thread kept).
                static constexpr std::string_view kBusy =
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    "Connection: close\r\nContent-Length: 82\r\n\r\n"
                    "{\"error\":{\"code\":\"busy\",\"message\":\"too many connections; try again "
                    "later\"}}\n";
                socket.non_blocking(true, ignored);
                asio::write(socket, asio::buffer(kBusy.data(), kBusy.size()), ignored);
                socket.shutdown(tcp::socket::shutdown_both, ignored);
                socket.close(ignored);
            }
        }
        accept();
    });
}

Server::Server(const std::string& host, int port, Limits limits, Handlers handlers,
               const std::string& who)
    : impl_(std::make_unique<Impl>(limits, std::move(handlers))) {
    if (port < 0 || port > 65535)
        throw ConfigError(who + ": port " + std::to_string(port) + " is not in 0..65535");
    beast::error_code ec;
    const auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    auto cannot = [&](const std::string& why) {
        return QueueError(who + ": cannot listen on " + host + ":" + std::to_string(port) + " (" +
                          why + ")");
    };
    if (ec) throw cannot("not an IP address");
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    impl_->acceptor.open(endpoint.protocol(), ec);
    if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) impl_->acceptor.bind(endpoint, ec);
    if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw cannot(ec.message());
    impl_->port = impl_->acceptor.local_endpoint().port();
    impl_->accept();
}

Server::~Server() {
    stop();
}

int Server::port() const {
    return impl_->port;
}

void Server::start() {
    std::lock_guard lock(impl_->threads_mutex);
    impl_->ioc.restart();
    for (std::size_t i = 0; i < std::max<std::size_t>(1, impl_->limits.threads); ++i)
        impl_->threads.emplace_back([impl = impl_.get()] { impl->ioc.run(); });
}

void Server::run() {
    std::vector<std::thread> helpers;
    for (std::size_t i = 1; i < std::max<std::size_t>(1, impl_->limits.threads); ++i)
        helpers.emplace_back([impl = impl_.get()] { impl->ioc.run(); });
    impl_->ioc.run();
    for (auto& t : helpers) t.join();
}

void Server::stop() {
    asio::post(impl_->acceptor.get_executor(), [impl = impl_.get()] {
        beast::error_code ignored;
        impl->acceptor.close(ignored);
    });
    impl_->ioc.stop();
    std::lock_guard lock(impl_->threads_mutex);
    for (auto& t : impl_->threads) {
        if (t.joinable()) t.join();
    }
    impl_->threads.clear();
}

}  // namespace voxq::http
