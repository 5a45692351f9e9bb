// RAII over libpq, and the one place where libpq failures become voxq errors
// (throw_pg). A PgConnection is used by one thread at a time (the store's pool
// hands connections out). Non-copyable, movable.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
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
inline Param null_param() {
    return std::nullopt;
}

// A query result. Rows and columns are 0-based; values are text.
class PgResult {
  public:
    explicit PgResult(PGresult* r) : result_(r) {}
    [[nodiscard]] int rows() const { return PQntuples(result_.get()); }
    [[nodiscard]] bool is_null(int row, int col) const {
        return PQgetisnull(result_.get(), row, col) != 0;
    }
    [[nodiscard]] std::string_view text(int row, int col) const {
        return {PQgetvalue(result_.get(), row, col),
                static_cast<std::size_t>(PQgetlength(result_.get(), row, col))};
    }
    [[nodiscard]] std::int64_t int64(int row, int col) const;
    [[nodiscard]] std::int64_t affected() const;

  private:
    std::unique_ptr<PGresult, ResultDeleter> result_;
};

class PgConnection {
  public:
    // Connects and sets search_path to `schema`. Throws StoreError.
    PgConnection(const std::string& conninfo, const std::string& schema);

    // Runs `sql` (no parameters; may hold several statements).
    void exec(const char* sql);
    // Runs the statement named `name` with text `sql`, preparing it on first use
    // on this connection. Throws StoreError (or the error the SQLSTATE maps to).
    PgResult run(const char* name, const char* sql, const std::vector<Param>& params);
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

    // False once the server or network dropped this connection.
    [[nodiscard]] bool healthy() const { return PQstatus(conn_.get()) == CONNECTION_OK; }
    [[nodiscard]] PGconn* handle() const noexcept { return conn_.get(); }

  private:
    PgResult check(PGresult* r, std::string_view context);
    std::unique_ptr<PGconn, ConnDeleter> conn_;
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
