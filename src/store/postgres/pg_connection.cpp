#include "store/postgres/pg_connection.hpp"

#include <poll.h>

#include <algorithm>
#include <charconv>
#include <chrono>

#include "util/text.hpp"

namespace voxq::pg {

namespace {

// The server's message without its trailing newline.
std::string message_of(PGconn* conn, const PGresult* r) {
    std::string m = r != nullptr ? PQresultErrorMessage(r) : PQerrorMessage(conn);
    if (m.empty() && conn != nullptr) m = PQerrorMessage(conn);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    // libpq quotes a URI it cannot parse whole, password included; and server
    // messages are not promised to be UTF-8.
    return to_valid_utf8(redact_credentials(m));
}

// Classified by what the caller should do: serialization failures, deadlocks,
// lost connections and an unavailable server are worth retrying; a statement on
// a connection that broke mid-flight may have committed (in doubt).
[[noreturn]] void throw_pg(PGconn* conn, const PGresult* r, std::string_view context) {
    const std::string state = sqlstate_of(r);
    const bool connection_lost = conn == nullptr || PQstatus(conn) != CONNECTION_OK ||
                                 state.rfind("08", 0) == 0 || state == "57P01" ||
                                 state == "57P02" || state == "57P03";
    const bool retryable = connection_lost || state == "40001" || state == "40P01" ||
                           state == "55P03" || state == "53300";
    std::string message = std::string(context) + ": " + message_of(conn, r);
    if (!state.empty()) message += " (SQLSTATE " + state + ")";
    if (connection_lost) {
        message += "; the connection was lost, the write may or may not have happened";
    }
    const char* constraint =
        r != nullptr ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : nullptr;
    throw PgStatementError(message, retryable, connection_lost, state,
                           constraint != nullptr ? constraint : "");
}

}  // namespace

std::string sqlstate_of(const PGresult* r) {
    if (r == nullptr) return {};
    const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return s != nullptr ? s : "";
}

std::int64_t PgResult::int64(int row, int col) const {
    const std::string_view t = text(row, col);
    std::int64_t v = 0;
    std::from_chars(t.data(), t.data() + t.size(), v);
    return v;
}

std::int64_t PgResult::affected() const {
    const char* n = PQcmdTuples(result_.get());
    return n != nullptr && *n != '\0' ? std::stoll(n) : 0;
}

namespace {

// Defaults that come before the user's connection string, so it can override
// each (libpq: array entries before an expanded dbname yield to its fields).
PGconn* connect_with_defaults(const std::string& conninfo, int timeout_ms) {
    const std::string connect_timeout = std::to_string(std::max(2, timeout_ms / 1000));
    const std::string user_timeout = std::to_string(timeout_ms);
    const char* keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          nullptr};
    const char* values[] = {connect_timeout.c_str(), "1",    "30", "10", "3", user_timeout.c_str(),
                            conninfo.c_str(),        nullptr};
    return PQconnectdbParams(keys, values, 1);
}

}  // namespace

PgConnection::PgConnection(const PgTarget& target)
    : conn_(connect_with_defaults(target.conninfo, target.timeout_ms)),
      timeout_ms_(target.timeout_ms) {
    if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
        // The message names host and port, never the password.
        throw StoreError("connect to PostgreSQL: " + message_of(conn_.get(), nullptr), true);
    }
    PQsetNoticeProcessor(
        conn_.get(), [](void*, const char*) {}, nullptr);
    use_schema(target.schema);
    exec("SET synchronous_commit TO on");
    // voxq never leaves a transaction idle (its statements run back to back):
    // a session that does is a client gone without a word, and the server ends
    // it, so its locks cannot hold rows from every other worker.
    exec(
        ("SET idle_in_transaction_session_timeout = " + std::to_string(target.timeout_ms)).c_str());
}

std::string PgConnection::quote_identifier(const std::string& name) const {
    char* quoted = PQescapeIdentifier(conn_.get(), name.c_str(), name.size());
    if (quoted == nullptr)
        throw StoreError("quote identifier: " + message_of(conn_.get(), nullptr), false);
    std::string out(quoted);
    PQfreemem(quoted);
    return out;
}

void PgConnection::use_schema(const std::string& schema) {
    // The schema name was validated (identifier characters only); quoted anyway.
    exec(("SET search_path TO " + quote_identifier(schema) + ", public").c_str());
}

bool PgConnection::wait_readable(int timeout_ms) {
    pollfd pfd{PQsocket(conn_.get()), POLLIN, 0};
    if (pfd.fd < 0) return false;
    return poll(&pfd, 1, timeout_ms) > 0;
}

bool PgConnection::consume_notifications() {
    if (PQconsumeInput(conn_.get()) == 0) return false;  // connection trouble: healthy() says
    bool any = false;
    while (PGnotify* n = PQnotifies(conn_.get())) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

PgResult PgConnection::check(PGresult* r, std::string_view context) {
    const ExecStatusType status = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return PgResult(r);
    PgResult owner(r);  // freed on the way out
    throw_pg(conn_.get(), r, context);
}

PgResult PgConnection::await_result(int sent, std::string_view context) {
    PGconn* c = conn_.get();
    if (sent == 0) throw_pg(c, nullptr, context);
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    // Waits for the socket until the deadline; false when it passed.
    auto wait = [&](short events) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd pfd{PQsocket(c), events, 0};
        return poll(&pfd, 1, static_cast<int>(left)) != 0;  // an error: let libpq say
    };
    auto give_up = [&]() {
        timed_out_ = true;  // half-read: the pool drops it
        throw PgStatementError(std::string(context) + ": PostgreSQL gave no answer within " +
                                   std::to_string(timeout_ms_ / 1000) +
                                   " s (VOXQ_PG_QUERY_TIMEOUT); the connection is given up, the "
                                   "write may or may not have happened",
                               true, true, "", "");
    };
    for (int pending = PQflush(c); pending != 0; pending = PQflush(c)) {
        if (pending < 0) throw_pg(c, nullptr, context);
        if (!wait(POLLOUT | POLLIN)) give_up();
        if (PQconsumeInput(c) == 0) throw_pg(c, nullptr, context);
    }
    // As PQexec: the first error if any, else the last result.
    PgResult kept;
    for (;;) {
        while (PQisBusy(c) != 0) {
            if (!wait(POLLIN)) give_up();
            if (PQconsumeInput(c) == 0) throw_pg(c, nullptr, context);
        }
        PGresult* r = PQgetResult(c);
        if (r == nullptr) break;
        const ExecStatusType status = PQresultStatus(r);
        const bool failed = status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK;
        if (kept.get() == nullptr || (failed && !kept.failed())) {
            kept = PgResult(r);
        } else {
            PQclear(r);
        }
    }
    return check(kept.release(), context);
}

void PgConnection::exec(const char* sql) {
    await_result(PQsendQuery(conn_.get(), sql), sql);
}

PgResult PgConnection::run(const Query& query, const std::vector<Param>& params) {
    const char* name = query.name;
    if (!prepared_.contains(name)) {
        await_result(PQsendPrepare(conn_.get(), name, query.sql, 0, nullptr),
                     std::string("prepare ") + name);
        prepared_.insert(name);
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
    return await_result(PQsendQueryPrepared(conn_.get(), name, static_cast<int>(values.size()),
                                            values.data(), nullptr, nullptr, 0),
                        name);
}

PgResult PgConnection::run_once(const std::string& sql, const std::vector<Param>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
    return await_result(PQsendQueryParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()),
                                          nullptr, values.data(), nullptr, nullptr, 0),
                        "query");
}

}  // namespace voxq::pg
