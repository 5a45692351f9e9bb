#include "store/postgres/pg_connection.hpp"

#include <poll.h>

#include <charconv>

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

PgConnection::PgConnection(const std::string& conninfo, const std::string& schema)
    : conn_(PQconnectdb(conninfo.c_str())) {
    if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
        // The message names host and port, never the password.
        throw StoreError("connect to PostgreSQL: " + message_of(conn_.get(), nullptr), true);
    }
    PQsetNoticeProcessor(
        conn_.get(), [](void*, const char*) {}, nullptr);
    use_schema(schema);
    exec("SET synchronous_commit TO on");
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

void PgConnection::exec(const char* sql) {
    check(PQexec(conn_.get(), sql), sql);
}

PgResult PgConnection::run(const char* name, const char* sql, const std::vector<Param>& params) {
    if (!prepared_.contains(name)) {
        check(PQprepare(conn_.get(), name, sql, 0, nullptr), std::string("prepare ") + name);
        prepared_.insert(name);
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
    return check(PQexecPrepared(conn_.get(), name, static_cast<int>(values.size()), values.data(),
                                nullptr, nullptr, 0),
                 name);
}

PgResult PgConnection::run_once(const std::string& sql, const std::vector<Param>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
    return check(PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0),
                 "query");
}

}  // namespace voxq::pg
