// RAII over sqlite3 handles, and the one place where SQLite result codes become
// voxq errors (throw_sqlite).
//
// A Connection is used by one thread at a time (opened with SQLITE_OPEN_NOMUTEX);
// the store hands connections out accordingly. Non-copyable, movable.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "voxq/errors.hpp"

namespace voxq::sqlite {

// Throws StoreError with "context: sqlite's message (code)". Busy/locked and I/O
// errors are marked retryable.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view context);

// Thrown by a read-write Connection when the database cannot be written (a
// read-only file, folder or filesystem): the store reopens it read-only.
class ReadOnlyDatabase : public StoreError {
  public:
    using StoreError::StoreError;
};

// SQLite found the file damaged (SQLITE_CORRUPT, SQLITE_NOTADB). Not retryable:
// the same read finds the same damage.
class DatabaseDamaged : public StoreError {
  public:
    using StoreError::StoreError;
};

struct DbDeleter {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct StmtDeleter {
    void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};

// A prepared statement, cached by its Connection. Bind with 1-based indexes;
// step() returns true while a row is available. Reset by the Connection when
// borrowed again (see Connection::prepare).
class Statement {
  public:
    Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

    Statement& bind(int i, std::int64_t v);
    Statement& bind(int i, double v);
    Statement& bind(int i, std::string_view v);
    Statement& bind_null(int i);
    Statement& bind_optional(int i, const std::optional<std::int64_t>& v);

    bool step();
    // Runs a statement that returns no rows.
    void run() { (void)step(); }

    [[nodiscard]] std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
    [[nodiscard]] double real(int col) const { return sqlite3_column_double(stmt_, col); }
    [[nodiscard]] bool is_null(int col) const {
        return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
    }
    [[nodiscard]] std::string text(int col) const;
    [[nodiscard]] std::string_view text_view(int col) const;

    void reset() noexcept;

  private:
    sqlite3* db_;
    sqlite3_stmt* stmt_;
};

class Connection {
  public:
    enum class Access { ReadWrite, ReadOnly };

    // Opens `path` and applies the pragmas every voxq connection uses. ReadWrite
    // creates the file if needed and switches it to WAL; it throws
    // ReadOnlyDatabase when the database cannot be written. ReadOnly never writes
    // (no WAL switch, no file created). Throws StoreError.
    Connection(const std::string& path, int busy_timeout_ms, bool synchronous_full,
               Access access = Access::ReadWrite);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    Connection(Connection&&) = default;
    Connection& operator=(Connection&&) = default;
    ~Connection() = default;

    // Runs one or more statements without results.
    void exec(const char* sql);
    // The cached statement for `sql` (a string literal: cached by address),
    // reset and with bindings cleared.
    Statement& prepare(const char* sql);
    // Resets every cached statement, so none holds the transaction open.
    void reset_statements() noexcept;
    // Rows changed by the last statement.
    [[nodiscard]] std::int64_t changes() const { return sqlite3_changes64(db_.get()); }
    [[nodiscard]] sqlite3* handle() const noexcept { return db_.get(); }

  private:
    struct StmtEntry {
        std::unique_ptr<sqlite3_stmt, StmtDeleter> owner;
        Statement stmt;
    };
    // Declared after db_, so destroyed first: statements are finalized before the
    // handle closes.
    std::unique_ptr<sqlite3, DbDeleter> db_;
    std::unordered_map<const char*, std::unique_ptr<StmtEntry>> statements_;

    void enable_wal();

    // Busy handling (see busy_handler in connection.cpp).
    int busy_timeout_ms_ = 0;
    std::int64_t busy_since_us_ = 0;
    static int busy_handler(void* self, int attempts) noexcept;
};

// BEGIN ... COMMIT as a scope guard: rolls back unless commit() was called.
class Transaction {
  public:
    enum class Kind { Deferred, Immediate };
    Transaction(Connection& conn, Kind kind);
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction();
    void commit();

  private:
    Connection& conn_;
    bool open_ = true;
};

}  // namespace voxq::sqlite
