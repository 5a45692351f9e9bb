// Every statement the SQLite store's operations prepare, by name, with the
// parameters each binds. sqlite_store.cpp reads as steps (prepare, bind, step);
// the SQL is here. States appear by name (sql_states.hpp), never as numbers.
// Transaction control and connection PRAGMAs stay with the connection.
#pragma once

#include <array>

#include "store/sql_states.hpp"

namespace voxq::sqlite::sql {

// The columns read_task reads, in its order (not_before and stalls follow
// where a query adds them).
#define VOXQ_TASK_COLUMNS                                                                       \
    "id, queue, state, priority, schedule_at, items, attempt_count, max_attempts, last_error, " \
    "dedup_key, created_at, updated_at, heartbeat_at, items_delivered"

// --- Schema ---------------------------------------------------------------
inline constexpr const char* kCreateSchemaTable =
    "CREATE TABLE IF NOT EXISTS voxq_schema (version INTEGER PRIMARY KEY, "
    "applied_at INTEGER NOT NULL)";
inline constexpr const char* kSchemaTableExists =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'voxq_schema'";
inline constexpr const char* kSchemaVersion = "SELECT COALESCE(MAX(version), 0) FROM voxq_schema";
// ?1 version
inline constexpr const char* kRecordMigration =
    "INSERT INTO voxq_schema (version, applied_at) "
    "VALUES (?1, CAST(strftime('%s', 'now') AS INTEGER))";
inline constexpr const char* kIntegrityCheck = "PRAGMA integrity_check(100)";
inline constexpr const char* kQuickCheck = "PRAGMA quick_check(1)";

// --- Tasks ----------------------------------------------------------------
// ?1 queue, ?2 dedup_key
inline constexpr const char* kFindByDedupKey =
    "SELECT id FROM tasks WHERE queue = ?1 AND dedup_key = ?2";
// ?1 id, ?2 queue, ?3 state, ?4 priority, ?5 schedule_at, ?6 items,
// ?7 max_attempts, ?8 dedup_key, ?9 created_at, ?10 updated_at
inline constexpr const char* kInsertTask =
    "INSERT INTO tasks (id, queue, state, priority, schedule_at, items, "
    "attempt_count, max_attempts, last_error, dedup_key, created_at, updated_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, '', ?8, ?9, ?10)";
// The guarded transition: ?1 id, ?2 to, ?3 now, ?4 reset attempts, ?5 attempt
// delta, ?6 schedule now, ?7 touch heartbeat, ?8 error, ?9 not_before,
// ?10 from, ?11 attempt (or NULL), ?12 items delivered (or NULL).
inline constexpr const char* kSetState =
    "UPDATE tasks SET state = ?2, updated_at = ?3, "
    "attempt_count = CASE WHEN ?4 THEN 0 ELSE attempt_count + ?5 END, "
    "stalls = CASE WHEN ?4 THEN 0 ELSE stalls END, "
    "schedule_at = CASE WHEN ?6 THEN ?3 ELSE schedule_at END, "
    "heartbeat_at = CASE WHEN ?7 THEN ?3 ELSE heartbeat_at END, "
    "last_error = COALESCE(?8, last_error), not_before = COALESCE(?9, 0), "
    "items_delivered = MAX(items_delivered, COALESCE(?12, 0)) "
    "WHERE id = ?1 AND state = ?10 AND (?11 IS NULL OR attempt_count = ?11) "
    "RETURNING queue, attempt_count";
// ?1 id
inline constexpr const char* kStateOf = "SELECT state, attempt_count FROM tasks WHERE id = ?1";
inline constexpr const char* kGetTask = "SELECT " VOXQ_TASK_COLUMNS " FROM tasks WHERE id = ?1";

// --- Error history --------------------------------------------------------
// ?1 task id, ?2 attempt, ?3 at, ?4 message
inline constexpr const char* kAppendError =
    "INSERT INTO task_errors (task_id, seq, attempt, at, message) VALUES (?1, "
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM task_errors WHERE task_id = ?1), ?2, ?3, ?4)";
// ?1 task id, ?2 entries kept
inline constexpr const char* kTrimErrors =
    "DELETE FROM task_errors WHERE task_id = ?1 AND seq <= "
    "(SELECT MAX(seq) FROM task_errors WHERE task_id = ?1) - ?2";
// ?1 task id
inline constexpr const char* kErrorsOf =
    "SELECT attempt, at, message FROM task_errors WHERE task_id = ?1 ORDER BY seq";
inline constexpr const char* kDeleteErrorsOf = "DELETE FROM task_errors WHERE task_id = ?1";

// --- Claim ----------------------------------------------------------------
inline constexpr const char* kQueuesWithPending =
    "SELECT queue FROM task_counts WHERE state = " VOXQ_SQL_PENDING " AND n > 0";
// The due tasks of one queue in claim order, straight off the partial index,
// moved to PROCESSING: ?1 now, ?2 limit, ?3 queue.
inline constexpr const char* kClaimFromQueue =
    "UPDATE tasks SET state = " VOXQ_SQL_PROCESSING
    ", attempt_count = attempt_count + 1, heartbeat_at = ?1, "
    "updated_at = ?1 WHERE id IN (SELECT id FROM tasks INDEXED BY tasks_due WHERE "
    "state = " VOXQ_SQL_PENDING
    " AND queue = ?3 AND schedule_at <= ?1 ORDER BY priority DESC, "
    "schedule_at, id LIMIT ?2) RETURNING " VOXQ_TASK_COLUMNS;
// ?1 queue, ?2 now, ?3 limit
inline constexpr const char* kDueInQueue =
    "SELECT priority, schedule_at, id FROM tasks INDEXED BY tasks_due WHERE state "
    "= " VOXQ_SQL_PENDING
    " AND queue = ?1 AND schedule_at <= ?2 ORDER BY priority DESC, schedule_at, id LIMIT ?3";
// ?1 now, ?2 id
inline constexpr const char* kClaimOne =
    "UPDATE tasks SET state = " VOXQ_SQL_PROCESSING
    ", attempt_count = attempt_count + 1, heartbeat_at = ?1, "
    "updated_at = ?1 WHERE id = ?2 AND state = " VOXQ_SQL_PENDING " RETURNING " VOXQ_TASK_COLUMNS;

// --- Rescue (retry sweep) -------------------------------------------------
// ?1 limit
inline constexpr const char* kRetryableOldestFirst =
    "SELECT " VOXQ_TASK_COLUMNS
    ", not_before, stalls FROM tasks INDEXED BY tasks_retryable WHERE state = " VOXQ_SQL_RETRYABLE
    " ORDER BY updated_at LIMIT ?1";
// ?1 heartbeat at or before, ?2 limit
inline constexpr const char* kExpiredLeases =
    "SELECT " VOXQ_TASK_COLUMNS
    ", not_before, stalls FROM tasks INDEXED BY tasks_leased WHERE state = " VOXQ_SQL_PROCESSING
    " AND heartbeat_at <= ?1 ORDER BY heartbeat_at LIMIT ?2";
// ?1 id, ?2 to, ?3 schedule_at, ?4 last_error, ?5 now, ?6 from, ?7 attempt, ?8 stalls
inline constexpr const char* kRescueMove =
    "UPDATE tasks SET state = ?2, schedule_at = ?3, last_error = ?4, "
    "updated_at = ?5, not_before = 0, stalls = ?8 WHERE id = ?1 AND state = ?6 "
    "AND attempt_count = ?7";

// --- List and purge, one statement per state ------------------------------
// Each state goes through the index that holds just its rows (finished tasks,
// the bulk, through the primary key). The state is a literal: SQLite uses a
// partial index only when the query itself implies the index's WHERE clause.
// ?2 ids below, ?3 queue ('' for all), ?4 limit
#define VOXQ_LIST(index_clause, state)                                              \
    "SELECT " VOXQ_TASK_COLUMNS " FROM tasks " index_clause " WHERE state = " state \
    " AND id < ?2 AND (?3 = '' OR queue = ?3) ORDER BY id DESC LIMIT ?4"
inline constexpr const char* kListAnyState =
    "SELECT " VOXQ_TASK_COLUMNS
    " FROM tasks WHERE id < ?2 AND (?3 = '' OR queue = ?3) ORDER BY id DESC LIMIT ?4";
// Indexed by TaskState.
inline constexpr std::array<const char*, 6> kListInState = {
    VOXQ_LIST("INDEXED BY tasks_due", VOXQ_SQL_PENDING),
    VOXQ_LIST("INDEXED BY tasks_leased", VOXQ_SQL_PROCESSING),
    VOXQ_LIST("", VOXQ_SQL_COMPLETED),
    VOXQ_LIST("INDEXED BY tasks_retryable", VOXQ_SQL_RETRYABLE),
    VOXQ_LIST("INDEXED BY tasks_cancelled", VOXQ_SQL_CANCELLED),
    VOXQ_LIST("INDEXED BY tasks_discarded", VOXQ_SQL_DISCARDED),
};
#undef VOXQ_LIST

// Up to ?2 tasks updated at or before ?1, oldest id first. Finished states only
// (nullptr elsewhere); indexed by TaskState.
#define VOXQ_PURGE(index_clause, state)                                                         \
    "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks " index_clause " WHERE state = " state \
    " AND updated_at <= ?1 ORDER BY id LIMIT ?2) RETURNING id, queue"
inline constexpr std::array<const char*, 6> kPurgeInState = {
    nullptr,
    nullptr,
    VOXQ_PURGE("", VOXQ_SQL_COMPLETED),
    nullptr,
    VOXQ_PURGE("INDEXED BY tasks_cancelled", VOXQ_SQL_CANCELLED),
    VOXQ_PURGE("INDEXED BY tasks_discarded", VOXQ_SQL_DISCARDED),
};
#undef VOXQ_PURGE

// --- Counts ---------------------------------------------------------------
inline constexpr const char* kCountAll = "SELECT state, SUM(n) FROM task_counts GROUP BY state";
// ?1 queue
inline constexpr const char* kCountQueue =
    "SELECT state, SUM(n) FROM task_counts WHERE queue = ?1 GROUP BY state";
inline constexpr const char* kCountsByQueue =
    "SELECT queue, state, SUM(n) FROM task_counts GROUP BY queue, state "
    "HAVING SUM(n) > 0 ORDER BY queue";
// Walks one queue's due entries only (the partial index holds PENDING rows):
// ?1 queue, ?2 now.
inline constexpr const char* kOldestDue =
    "SELECT MIN(schedule_at) FROM tasks INDEXED BY tasks_due "
    "WHERE queue = ?1 AND state = " VOXQ_SQL_PENDING " AND schedule_at <= ?2";
// ?1 queue, ?2 state, ?3 delta
inline constexpr const char* kAddCount =
    "INSERT INTO task_counts (queue, state, n) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n";

// --- Rate buckets ---------------------------------------------------------
// ?1 name
inline constexpr const char* kReadBucket =
    "SELECT tokens, updated_at FROM rate_buckets WHERE name = ?1";
// ?1 name, ?2 tokens, ?3 updated_at
inline constexpr const char* kWriteBucket =
    "INSERT INTO rate_buckets (name, tokens, updated_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (name) DO UPDATE SET tokens = excluded.tokens, "
    "updated_at = excluded.updated_at";

// --- Check (SQLite-only rules; the shared ones are in store_check.hpp) -----
inline constexpr const char* kItemsNotAnArray =
    "SELECT count(*), min(id) FROM tasks WHERE NOT json_valid(items) OR "
    "json_type(items) <> 'array'";
inline constexpr const char* kProgressPastLastItem =
    "SELECT count(*), min(id) FROM tasks WHERE json_valid(items) AND json_type(items) = "
    "'array' AND items_delivered > json_array_length(items)";

#undef VOXQ_TASK_COLUMNS

}  // namespace voxq::sqlite::sql
