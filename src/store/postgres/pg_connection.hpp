// RAII over libpq, and the one place where libpq failures become voxq errors
// (throw_pg). A PgConnection is used by one thread at a time (the store's pool
// hands connections out). Non-copyable, movable.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "voxq/errors.hpp"

namespace voxq::pg {

struct ConnDeleter {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct ResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};

// A failed statement, with its SQLSTATE and constraint (for the store to map
// unique violations and the like to voxq's own errors).
class PgStatementError : public StoreError {
  public:
    PgStatementError(const std::string& message, bool retryable, bool in_doubt,
                     std::string sqlstate, std::string constraint)
        : StoreError(message, retryable, in_doubt),
          sqlstate_(std::move(sqlstate)),
          constraint_(std::move(constraint)) {}
    [[nodiscard]] const std::string& sqlstate() const noexcept { return sqlstate_; }
    [[nodiscard]] const std::string& constraint() const noexcept { return constraint_; }

  private:
    std::string sqlstate_;
    std::string constraint_;
};

// One query parameter in text format; std::nullopt is SQL NULL.
using Param = std::optional<std::string>;
inline Param param(std::int64_t v) {
    return std::to_string(v);
}
inline Param param(std::string v) {
    return v;
}
inline Param param(const char* v) {
    return std::string(v);
}
// Named apart from param(int64): an int argument would match both.
inline Param real_param(double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", v);
    return std::string(text);
}
inline Param null_param() {
    return std::nullopt;
}

// A query result. Rows and columns are 0-based; values are text.
class PgResult {
  public:
    PgResult() = default;
    explicit PgResult(PGresult* r) : result_(r) {}
    [[nodiscard]] const PGresult* get() const noexcept { return result_.get(); }
    [[nodiscard]] PGresult* release() noexcept { return result_.release(); }
    [[nodiscard]] bool failed() const {
        const ExecStatusType s = PQresultStatus(result_.get());
        return s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK;
    }
    [[nodiscard]] int rows() const { return PQntuples(result_.get()); }
    [[nodiscard]] bool is_null(int row, int col) const {
        return PQgetisnull(result_.get(), row, col) != 0;
    }
    [[nodiscard]] std::string_view text(int row, int col) const {
        return {PQgetvalue(result_.get(), row, col),
                static_cast<std::size_t>(PQgetlength(result_.get(), row, col))};
    }
    [[nodiscard]] std::int64_t int64(int row, int col) const;
    // float8 text ("NaN" and "Infinity" included).
    [[nodiscard]] double real(int row, int col) const {
        return std::strtod(std::string(text(row, col)).c_str(), nullptr);
    }
    [[nodiscard]] std::int64_t affected() const;

  private:
    std::unique_ptr<PGresult, ResultDeleter> result_;
};

// Where a connection goes: libpq's connection string, the schema, and how long
// a statement (or the connect) may go unanswered.
struct PgTarget {
    std::string conninfo;
    std::string schema;
    int timeout_ms = 60'000;
};

// A prepared statement: its name on the connection and its text (pg_queries.hpp).
struct Query {
    const char* name;
    const char* sql;
};

class PgConnection {
  public:
    // Connects and sets search_path to the schema. Throws StoreError. Every
    // statement (and the connect) that gets no answer within the target's
    // timeout fails as a lost connection; keepalives and TCP_USER_TIMEOUT are on
    // unless the connection string sets them.
    explicit PgConnection(const PgTarget& target);

    // Runs `sql` (no parameters; may hold several statements).
    void exec(const char* sql);
    // Runs the statement, preparing it on first use on this connection. Throws
    // StoreError (or the error the SQLSTATE maps to).
    PgResult run(const Query& query, const std::vector<Param>& params);
    // Runs `sql` once with parameters, without preparing it.
    PgResult run_once(const std::string& sql, const std::vector<Param>& params);

    // `name` quoted as an SQL identifier.
    [[nodiscard]] std::string quote_identifier(const std::string& name) const;
    // Points unqualified names at `schema` (then public).
    void use_schema(const std::string& schema);

    // Waits up to `timeout_ms` for data on the socket; true if some arrived.
    bool wait_readable(int timeout_ms);
    // Reads what arrived; true if it held at least one notification (consumed).
    bool consume_notifications();

    // False once the server or network dropped this connection, or it gave no
    // answer in time.
    [[nodiscard]] bool healthy() const {
        return !timed_out_ && PQstatus(conn_.get()) == CONNECTION_OK;
    }
    [[nodiscard]] PGconn* handle() const noexcept { return conn_.get(); }

  private:
    PgResult check(PGresult* r, std::string_view context);
    // Waits for the answer to the query just sent (`sent`: what PQsend* returned)
    // until the deadline; the result as PQexec would return it.
    PgResult await_result(int sent, std::string_view context);
    std::unique_ptr<PGconn, ConnDeleter> conn_;
    int timeout_ms_;
    bool timed_out_ = false;
    std::set<std::string> prepared_;
};

// The SQLSTATE of a failed result ("23505"), or "" if none.
std::string sqlstate_of(const PGresult* r);

// BEGIN ... COMMIT; rolls back unless committed (if the connection still works).
class Transaction {
  public:
    explicit Transaction(PgConnection& c, const char* begin = "BEGIN") : c_(c) { c_.exec(begin); }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
        if (open_ && c_.healthy()) {
            PQclear(PQexec(c_.handle(), "ROLLBACK"));
        }
    }
    void commit() {
        c_.exec("COMMIT");
        open_ = false;
    }
    void rollback() {
        open_ = false;
        c_.exec("ROLLBACK");
    }

  private:
    PgConnection& c_;
    bool open_ = true;
};

}  // namespace voxq::pg
