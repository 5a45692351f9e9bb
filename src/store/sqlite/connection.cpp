#include "store/sqlite/connection.hpp"

#include <sys/statvfs.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

namespace voxq::sqlite {

void throw_sqlite(sqlite3* db, int rc, std::string_view context) {
    const int primary = rc & 0xFF;
    std::string message = std::string(context) + ": ";
    message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    message += " (sqlite code " + std::to_string(rc) + ")";
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
        throw DatabaseDamaged(message, false);
    const bool retryable = primary == SQLITE_BUSY || primary == SQLITE_LOCKED ||
                           primary == SQLITE_IOERR || primary == SQLITE_FULL ||
                           primary == SQLITE_CANTOPEN || primary == SQLITE_PROTOCOL;
    throw StoreError(message, retryable);
}

Statement& Statement::bind(int i, std::int64_t v) {
    if (int rc = sqlite3_bind_int64(stmt_, i, v); rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
    return *this;
}

Statement& Statement::bind(int i, double v) {
    if (int rc = sqlite3_bind_double(stmt_, i, v); rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
    return *this;
}

Statement& Statement::bind(int i, std::string_view v) {
    if (int rc = sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
        rc != SQLITE_OK) {
        throw_sqlite(db_, rc, "bind");
    }
    return *this;
}

Statement& Statement::bind_null(int i) {
    if (int rc = sqlite3_bind_null(stmt_, i); rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
    return *this;
}

Statement& Statement::bind_optional(int i, const std::optional<std::int64_t>& v) {
    return v ? bind(i, *v) : bind_null(i);
}

bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    // The message of a failed step lives on the statement's connection.
    throw_sqlite(db_, rc, "step");
}

std::string Statement::text(int col) const {
    return std::string(text_view(col));
}

std::string_view Statement::text_view(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    if (p == nullptr) return {};
    return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
}

void Statement::reset() noexcept {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

namespace {

bool on_read_only_filesystem(const std::string& file) {
    struct statvfs fs {};
    return !file.empty() && statvfs(file.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY) != 0;
}

// A crashed writer's commits still in `path`-wal (read only for read-only opens:
// every other open of a connection would pay a stat for nothing).
bool has_leftover_wal(const std::string& path) {
    std::error_code missing;
    const auto size = std::filesystem::file_size(path + "-wal", missing);
    return !missing && size > 0;
}

// A "file:" URI for `path` with every byte but unreserved ones and '/'
// percent-encoded, so nothing in the path reads as a URI parameter.
std::string immutable_uri(const std::string& path) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string uri = "file:";
    for (const unsigned char c : path) {
        if (std::isalnum(c) != 0 || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
            uri += static_cast<char>(c);
        } else {
            uri += '%';
            uri += kHex[c >> 4];
            uri += kHex[c & 0xF];
        }
    }
    return uri + "?immutable=1";
}

}  // namespace

Connection::Connection(const std::string& path, int busy_timeout_ms, bool synchronous_full,
                       Access access) {
    sqlite3* raw = nullptr;
    // No SQLITE_OPEN_URI for the user's path: a path is a path, never
    // "file:...?mode=memory".
    int flags = (access == Access::ReadOnly ? SQLITE_OPEN_READONLY
                                            : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX;
    std::string target = path;
    if (access == Access::ReadOnly && on_read_only_filesystem(path) && !has_leftover_wal(path)) {
        // A WAL database needs its -shm file, which nobody can create on a
        // read-only filesystem; and nobody can change the file there either, so
        // SQLite may read it as immutable (no locks, no -shm). Not with a -wal
        // left behind: immutable reads would skip the commits in it (without
        // immutable, SQLite reads it if the -shm is there too, or says why not).
        target = immutable_uri(path);
        flags |= SQLITE_OPEN_URI;
    }
    const int rc = sqlite3_open_v2(target.c_str(), &raw, flags, nullptr);
    db_.reset(raw);  // owns the handle even when opening failed
    if (rc != SQLITE_OK) {
        const std::filesystem::path parent = std::filesystem::path(path).parent_path();
        const std::string folder = parent.empty() ? std::string(".") : parent.string();
        const bool read_only = access == Access::ReadOnly || (rc & 0xFF) == SQLITE_READONLY ||
                               on_read_only_filesystem(folder);
        if (!read_only) throw_sqlite(db_.get(), rc, "open " + path);
        // Not retryable: a read-only filesystem stays so.
        throw StoreError("open " + path + " (read-only): " + sqlite3_errstr(rc), false);
    }
    sqlite3_extended_result_codes(raw, 1);
    busy_timeout_ms_ = busy_timeout_ms;
    sqlite3_busy_handler(raw, &Connection::busy_handler, this);
    if (access == Access::ReadWrite) {
        // SQLite opens a file it may not write read-only without saying so.
        if (sqlite3_db_readonly(raw, "main") == 1) {
            throw ReadOnlyDatabase("open " + path + ": the database file is read-only", false);
        }
        enable_wal();
        exec(synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    }
    exec("PRAGMA foreign_keys=ON");
    exec("PRAGMA temp_store=MEMORY");
    // 16 MiB of page cache (SQLite's default is 2 MiB): the hot pages of a busy
    // queue stay in memory while RSS stays bounded whatever the table size.
    exec("PRAGMA cache_size=-16384");
}

// SQLite's own busy handler sleeps up to 100 ms between tries, so with several
// processes writing, one can starve while the others keep taking the lock. This
// one retries every 50-500 us (with jitter) until the busy timeout, which keeps
// waiting writers close to first-come, first-served.
int Connection::busy_handler(void* self, int attempts) noexcept {
    auto* conn = static_cast<Connection*>(self);
    const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    if (attempts == 0) conn->busy_since_us_ = now_us;
    if (now_us - conn->busy_since_us_ >= static_cast<std::int64_t>(conn->busy_timeout_ms_) * 1000) {
        return 0;  // give up: the caller gets SQLITE_BUSY
    }
    thread_local std::minstd_rand jitter(std::random_device{}());
    const int ceiling = attempts < 8 ? 50 << (attempts / 2) : 500;
    std::this_thread::sleep_for(std::chrono::microseconds(25 + jitter() % ceiling));
    return 1;
}

// Switching a new database to WAL takes an exclusive lock, and SQLite answers
// SQLITE_BUSY at once (without the busy handler) when another process is
// opening the same new file. Retry until the busy timeout; once any process has
// switched, the mode is persistent and this returns at once.
void Connection::enable_wal() {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms_);
    for (;;) {
        const int rc =
            sqlite3_exec(db_.get(), "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
        if (rc == SQLITE_OK) return;
        const int primary = rc & 0xFF;
        if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED) ||
            std::chrono::steady_clock::now() >= deadline) {
            const char* file = sqlite3_db_filename(db_.get(), "main");
            const std::string name = file != nullptr ? file : "";
            if (primary == SQLITE_READONLY || on_read_only_filesystem(name)) {
                throw ReadOnlyDatabase("open " + name + ": the database or its folder is read-only",
                                       false);
            }
            throw_sqlite(db_.get(), rc, "open " + name + ": PRAGMA journal_mode=WAL");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void Connection::exec(const char* sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, &error);
    sqlite3_free(error);  // the same text is available from sqlite3_errmsg
    if (rc != SQLITE_OK) throw_sqlite(db_.get(), rc, sql);
}

Statement& Connection::prepare(const char* sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
        sqlite3_stmt* raw = nullptr;
        const int rc =
            sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
        if (rc != SQLITE_OK) throw_sqlite(db_.get(), rc, "prepare");
        auto entry = std::make_unique<StmtEntry>(
            StmtEntry{std::unique_ptr<sqlite3_stmt, StmtDeleter>(raw), Statement(db_.get(), raw)});
        it = statements_.emplace(sql, std::move(entry)).first;
    }
    it->second->stmt.reset();
    return it->second->stmt;
}

void Connection::reset_statements() noexcept {
    for (auto& [sql, entry] : statements_) sqlite3_reset(entry->owner.get());
}

Transaction::Transaction(Connection& conn, Kind kind) : conn_(conn) {
    conn_.exec(kind == Kind::Immediate ? "BEGIN IMMEDIATE" : "BEGIN");
}

Transaction::~Transaction() {
    if (open_) sqlite3_exec(conn_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    conn_.exec("COMMIT");
    open_ = false;
}

}  // namespace voxq::sqlite
