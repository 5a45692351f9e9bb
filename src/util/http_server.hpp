// An HTTP/1.1 server that bounds everything a client can make it hold (SPEC §8,
// §12): the request line and headers, the body whatever its framing, the time to
// send them, the number of connections (in all and per client address) and the
// body bytes held at once. `voxq serve` and `voxq sink` run on it.
//
// Built on Boost.Beast (whose parser enforces header and body limits for
// Content-Length and chunked bodies alike); Beast's types stay in the .cpp.
//
// Framing that can desynchronize a proxy and this server is refused: duplicate
// Content-Length, Content-Length with Transfer-Encoding, a transfer coding other
// than `chunked`. Any answer sent before the body was read closes the connection,
// so an unread body is never parsed as a request.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace voxq::http {

struct Limits {
    std::size_t max_header_bytes = std::size_t{16} * 1024;  // request line + headers (431 beyond)
    std::size_t max_body_bytes = std::size_t{4} << 20;      // decoded size (413 beyond)
    // Bodies being read or handled at once, in all: a request that would go beyond
    // gets 503, so N slow uploads cannot add up to N x max_body_bytes.
    std::size_t max_body_bytes_in_flight = std::size_t{64} << 20;
    std::size_t max_connections = 512;
    std::size_t max_connections_per_client = 128;
    // From the moment the server waits for a request to its last header byte
    // (covers idle keep-alive connections and slow senders alike).
    std::chrono::milliseconds header_timeout{10'000};
    std::chrono::milliseconds body_timeout{30'000};
    std::chrono::milliseconds write_timeout{30'000};
    // Threads that read, handle and write; handlers may block (store calls).
    std::size_t threads = 32;
};

// A request as handlers see it. Header names are lower case; values as sent.
struct Request {
    std::string method;
    std::string target;                                      // as sent
    std::string path;                                        // percent-decoded: may hold any bytes
    std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;
    std::string client;  // the peer's address

    // The first value of a header ("" if absent); `name` in lower case.
    [[nodiscard]] std::string header(std::string_view name) const;
    [[nodiscard]] bool has_header(std::string_view name) const;
    // The first value of a query parameter, if present.
    [[nodiscard]] std::optional<std::string> param(std::string_view name) const;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    bool close = false;  // close the connection after this answer
};

struct Handlers {
    // Called once the headers are read, before any body byte. An answer here is
    // sent and the connection closed; `body_limit` (preset to Limits) may be lowered.
    std::function<std::optional<Response>(const Request& head, std::size_t& body_limit)> admit;
    // The whole request. Exceptions become error(500, ...).
    std::function<Response(Request& request)> handle;
    // The answer for errors the server itself finds (400 framing, 408, 413, 415,
    // 431, 500, 503), so that every error has the service's own shape.
    std::function<Response(int status, const std::string& message)> error;
};

// A loopback host name or literal: "localhost", "::1", "[::1]" or a dotted-decimal
// IPv4 address in 127.0.0.0/8 (never a name that merely starts with "127.").
[[nodiscard]] bool is_loopback_host(std::string_view host);

// Percent-decoding of paths and query strings ('+' is a space in queries only).
std::string percent_decode(std::string_view text, bool plus_is_space);
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

// Decides the outcome of one request held fully in memory (the server's own parser,
// limits and framing rules, then the handlers), without sockets: what the fuzz
// target drives. Returns the answers in order; stops at the first that closes.
std::vector<Response> handle_bytes(std::string_view bytes, const Limits& limits,
                                   const Handlers& handlers);

class Server {
  public:
    // Binds host:port (0: any free port); throws QueueError naming `who` when it
    // cannot.
    Server(const std::string& host, int port, Limits limits, Handlers handlers,
           const std::string& who);
    ~Server();  // stop()
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    [[nodiscard]] int port() const;
    void start();  // serves on threads of its own; returns once it accepts
    void run();    // serves on this thread (and helpers) until stop()
    void stop();   // idempotent; from any thread

    struct Impl;  // opaque; public so that the connection code can name it

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace voxq::http
