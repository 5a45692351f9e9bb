// File: voxq/config.hpp
//
// QueueConfig: everything a WorkerQueue needs to know, with the defaults of the
// user's guide. Build it by hand (designated initializers work) or from the
// environment with QueueConfig::from_env(). validate() is called by both
// from_env() and WorkerQueue's constructor.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace voxq {

// Where the data lives, parsed from a SQLAlchemy-style URL.
struct DatabaseLocation {
    enum class Kind : std::uint8_t { Sqlite, Postgres };
    Kind kind = Kind::Sqlite;
    // Sqlite: a file path (relative to the working directory, or absolute), or
    // ":memory:". Postgres: the URL handed to libpq, without any "+driver".
    std::string target;
};

// Parses `url`. Accepted: sqlite:///rel.db, sqlite+aiosqlite:///rel.db,
// sqlite:////abs.db, sqlite:///:memory:, postgresql://, postgres://,
// postgresql+asyncpg://, postgresql+psycopg://. Throws ConfigError naming
// `variable` and the URL otherwise.
[[nodiscard]] DatabaseLocation parse_database_url(const std::string& url,
                                                  const std::string& variable = "database_url");

// How often SQLite syncs to disk. Full: a returned write survives power loss.
// Normal: survives a process crash, may lose the last moments on power loss.
enum class SqliteSynchronous : std::uint8_t { Full, Normal };

struct QueueConfig {
    // --- Parameters of the guide (QUEUE_* variables) ---

    // QUEUE_DATABASE_URL. Default: sqlite+aiosqlite:///data/queue.db
    std::string database_url = "sqlite+aiosqlite:///data/queue.db";
    // QUEUE_MAX_ATTEMPTS (>= 1). Attempts before the retry sweep discards a task,
    // for tasks whose own max_attempts is 0. Default: 3.
    std::int64_t default_max_attempts = 3;
    // QUEUE_VISIBILITY_TIMEOUT, seconds (> 0). A PROCESSING task whose lease is
    // older than this is presumed abandoned by the retry sweep. Default: 3600.
    double default_visibility_timeout = 3600;
    // QUEUE_RETRY_BACKOFF_MULTIPLIER (>= 1.0). Default: 2.0.
    double retry_backoff_multiplier = 2.0;
    // QUEUE_RETRY_BASE_DELAY, seconds (>= 0). Delay after the first attempt. Default: 60.
    double retry_base_delay = 60;
    // QUEUE_MAX_RETRY_DELAY, seconds (>= retry_base_delay). Cap. Default: 3600.
    double max_retry_delay = 3600;
    // QUEUE_BATCH_SIZE (>= 1). Default size of dequeue() and retry(). Default: 100.
    std::int64_t batch_size = 100;

    // --- Beyond the guide (VOXQ_* variables) ---

    // VOXQ_MAX_TEXT_LENGTH, bytes (1 .. 1,000,000). Default: 10,000.
    std::int64_t max_text_length = 10'000;
    // VOXQ_SQLITE_SYNCHRONOUS: FULL (default) or NORMAL. See SqliteSynchronous.
    SqliteSynchronous sqlite_synchronous = SqliteSynchronous::Full;
    // VOXQ_SQLITE_BUSY_TIMEOUT_MS (>= 0): how long a write waits for another
    // process holding the database's write lock before failing with StoreError.
    // Default: 10,000.
    std::int64_t sqlite_busy_timeout_ms = 10'000;
    // VOXQ_ERROR_HISTORY (>= 1): errors kept per task. Default: 10.
    std::int64_t error_history_limit = 10;
    // VOXQ_MAX_STALLS: a task whose lease expired this many times (its worker
    // died or hung each time) is discarded as a poison task by the sweep.
    std::int64_t max_stalls = 3;
    // VOXQ_PG_SCHEMA: the PostgreSQL schema voxq's tables live in (created if
    // missing). 1-63 of [a-z0-9_], not starting with a digit. Default: voxq.
    std::string postgres_schema = "voxq";
    // VOXQ_PG_POOL_SIZE (1..1000): connections per process. Default: 10.
    std::int64_t postgres_pool_size = 10;
    // VOXQ_PG_QUERY_TIMEOUT (seconds, 1..86400): how long voxq waits for
    // PostgreSQL to answer one statement (or to connect) before it gives the
    // connection up as lost: a network that silently drops packets must not hang
    // a worker forever. The statement may still have run (in doubt). Default: 60.
    double postgres_query_timeout = 60;

    // Reads the variables above from the process environment. Unset => default.
    // Throws ConfigError naming the variable and value when one is malformed or
    // out of range.
    [[nodiscard]] static QueueConfig from_env();
    // The same, from an explicit map (for tests and embedding).
    [[nodiscard]] static QueueConfig from_map(const std::map<std::string, std::string>& env);

    // Throws ConfigError naming the field when a value is out of range or the
    // database URL is not understood.
    void validate() const;
};

// One field of QueueConfig, for code that converts the whole of it (the Python
// binding): its name, its environment variable and its member. The same table
// drives from_env() and validate(), so a new field is one row.
struct ConfigField {
    std::string_view name;
    std::string_view variable;
    std::variant<std::string QueueConfig::*, std::int64_t QueueConfig::*, double QueueConfig::*,
                 SqliteSynchronous QueueConfig::*>
        member;
};
// Every field, in declaration order.
[[nodiscard]] const std::vector<ConfigField>& config_fields();
// "FULL" / "NORMAL", and back (any case; nullopt for anything else).
[[nodiscard]] std::string_view to_string(SqliteSynchronous mode) noexcept;
[[nodiscard]] std::optional<SqliteSynchronous> parse_sqlite_synchronous(std::string_view text);

// The retry schedule: delay before attempt n+1, after n attempts (n >= 1):
// min(base * multiplier^(n-1), max).
struct RetryPolicy {
    double base_delay = 60;
    double multiplier = 2.0;
    double max_delay = 3600;
    [[nodiscard]] double delay_after(std::int64_t attempt_count) const;
};

// A speech engine's budget, as paid speech APIs bill and throttle it (SPEC §6),
// shared by every worker process on one database. 0 = no limit. The budget is
// spread evenly: in any 10-second window at most a sixth of the per-minute figure,
// plus a burst of a 24th (at least one request).
struct RateLimit {
    double requests_per_minute = 0;
    double characters_per_minute = 0;
    [[nodiscard]] bool limited() const {
        return requests_per_minute > 0 || characters_per_minute > 0;
    }
};

}  // namespace voxq
