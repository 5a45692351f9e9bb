// Every statement the PostgreSQL store's operations run, by name, with the
// parameters each takes. A Query pairs the prepared statement's name with its
// text, so the two cannot drift apart. States appear by name (sql_states.hpp),
// never as numbers. Each statement that moves tasks also counts the move in
// the caller's shard of task_counts, in the same statement.
#pragma once

#include <array>

#include "store/postgres/pg_connection.hpp"
#include "store/sql_states.hpp"

namespace voxq::pg::sql {

// The columns read_task reads, in its order (not_before and stalls follow
// where a query adds them).
#define VOXQ_PG_COLUMNS                                                                         \
    "id, queue, state, priority, schedule_at, items, attempt_count, max_attempts, last_error, " \
    "dedup_key, created_at, updated_at, heartbeat_at, items_delivered"
#define VOXQ_PG_COLUMNS_T                                                                     \
    "t.id, t.queue, t.state, t.priority, t.schedule_at, t.items, t.attempt_count, "           \
    "t.max_attempts, t.last_error, t.dedup_key, t.created_at, t.updated_at, t.heartbeat_at, " \
    "t.items_delivered"
// Adds the rows of `source` (queue, state, delta) to the connection's shard.
#define VOXQ_PG_COUNT(source, shard_param)                                               \
    "INSERT INTO task_counts (queue, state, shard, n) SELECT queue, state, " shard_param \
    ", d FROM " source                                                                   \
    " ON CONFLICT (queue, state, shard) DO UPDATE SET n = task_counts.n + excluded.n"
// Counts rows of `moved` leaving state `from` for state `to`.
#define VOXQ_PG_COUNT_MOVES(from, to, shard_param)                                            \
    VOXQ_PG_COUNT("(SELECT queue, s.state, s.sign * count(*) AS d FROM moved, (VALUES (" from \
                  "::smallint, -1), (" to                                                     \
                  "::smallint, 1)) AS s(state, sign) GROUP BY queue, s.state, s.sign) AS n",  \
                  shard_param)

// --- Schema (run unprepared: the schema may not exist yet) -----------------
inline constexpr const char* kMigrateLock = "SELECT pg_advisory_xact_lock(hashtext($1))";
inline constexpr const char* kCreateSchemaTable =
    "CREATE TABLE IF NOT EXISTS voxq_schema (version INTEGER PRIMARY KEY, "
    "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";
inline constexpr const char* kSchemaTableExists = "SELECT to_regclass('voxq_schema') IS NOT NULL";
inline constexpr const char* kSchemaVersion = "SELECT COALESCE(MAX(version), 0) FROM voxq_schema";
inline constexpr const char* kRecordMigration = "INSERT INTO voxq_schema (version) VALUES ($1)";

// --- Tasks ----------------------------------------------------------------
// The whole batch in one statement: $1 the rows as one JSON array (ord, id,
// queue, priority, schedule_at, items, max_attempts, dedup_key, created_at,
// updated_at), $2 shard, $3 NOTIFY channel. Returns the ids inserted; a row
// whose dedup key exists is skipped. The NOTIFY is delivered at commit.
inline constexpr Query kInsertTasks{
    "voxq_insert",
    "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(ord INT, id "
    "TEXT, queue TEXT, priority BIGINT, schedule_at BIGINT, items TEXT, "
    "max_attempts BIGINT, dedup_key TEXT, created_at BIGINT, updated_at BIGINT)), "
    "ins AS (INSERT INTO tasks (id, queue, state, priority, schedule_at, items, "
    "max_attempts, dedup_key, created_at, updated_at) SELECT id, queue, " VOXQ_SQL_PENDING
    ", priority, schedule_at, items, max_attempts, dedup_key, created_at, updated_at "
    "FROM input ORDER BY ord ON CONFLICT (queue, dedup_key) WHERE dedup_key IS NOT "
    "NULL DO NOTHING RETURNING id, queue), "
    "counted AS (" VOXQ_PG_COUNT("(SELECT queue, " VOXQ_SQL_PENDING
                                 "::smallint AS state, count(*) AS d FROM ins GROUP BY queue) AS n",
                                 "$2::smallint") "), "
    "notified AS (SELECT pg_notify($3, '') WHERE EXISTS (SELECT 1 FROM ins)) "
    "SELECT id FROM ins, (SELECT count(*) FROM notified) AS n"};
// $1 queue, $2 dedup key
inline constexpr Query kFindByDedupKey{"voxq_dedup_id",
                                       "SELECT id FROM tasks WHERE queue = $1 AND dedup_key = $2"};
// $1 ids as a JSON array: the first that is stored.
inline constexpr Query kFirstExisting{
    "voxq_existing",
    "SELECT id FROM tasks WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)) LIMIT 1"};

// Due rows in claim order, skipping rows another worker holds, moved to
// PROCESSING and counted: $1 now, $2 limit, $3 shard (and $4 queue).
#define VOXQ_PG_CLAIM(filter)                                                                \
    "WITH picked AS (SELECT id FROM tasks WHERE state = " VOXQ_SQL_PENDING                   \
    " AND schedule_at <= $1::bigint " filter                                                 \
    " ORDER BY priority DESC, schedule_at, id LIMIT $2::bigint FOR UPDATE SKIP LOCKED), "    \
    "moved AS (UPDATE tasks t SET state = " VOXQ_SQL_PROCESSING                              \
    ", attempt_count = t.attempt_count + 1, "                                                \
    "heartbeat_at = $1::bigint, updated_at = $1::bigint FROM picked WHERE t.id = picked.id " \
    "RETURNING " VOXQ_PG_COLUMNS_T "), counted AS (" VOXQ_PG_COUNT_MOVES(                    \
        VOXQ_SQL_PENDING, VOXQ_SQL_PROCESSING, "$3::smallint") ") SELECT * FROM moved"
inline constexpr Query kClaimAny{"voxq_claim", VOXQ_PG_CLAIM("")};
inline constexpr Query kClaimFromQueue{"voxq_claim_queue", VOXQ_PG_CLAIM("AND queue = $4")};
#undef VOXQ_PG_CLAIM

// The guarded transition in one statement: moves the row, counts the move and
// records the error. $1 id, $2 to, $3 now, $4 reset attempts, $5 attempt delta,
// $6 schedule now, $7 touch heartbeat, $8 error, $9 not_before, $10 from,
// $11 attempt (or NULL), $12 shard, $13 errors kept, $14 items delivered.
inline constexpr Query kSetState{
    "voxq_set_state",
    "WITH moved AS (UPDATE tasks SET state = $2::smallint, updated_at = $3::bigint, "
    "attempt_count = CASE WHEN $4::boolean THEN 0 ELSE attempt_count + $5::bigint END, "
    "stalls = CASE WHEN $4::boolean THEN 0 ELSE stalls END, "
    "schedule_at = CASE WHEN $6::boolean THEN $3::bigint ELSE schedule_at END, "
    "heartbeat_at = CASE WHEN $7::boolean THEN $3::bigint ELSE heartbeat_at END, "
    "last_error = COALESCE($8::text, last_error), "
    "not_before = COALESCE($9::bigint, 0), "
    "items_delivered = GREATEST(items_delivered, COALESCE($14::bigint, 0)) "
    "WHERE id = $1::text AND state = $10::smallint AND "
    "($11::bigint IS NULL OR attempt_count = $11::bigint) "
    "RETURNING queue, attempt_count), "
    "counted AS (" VOXQ_PG_COUNT(
        "(SELECT queue, s.state, s.d FROM moved, (VALUES ($10::smallint, -1), "
        "($2::smallint, 1)) AS s(state, d) WHERE $10::smallint <> $2::smallint) AS n",
        "$12::smallint") "), "
    "logged AS (INSERT INTO task_errors (task_id, seq, attempt, at, message) "
    "SELECT $1::text, COALESCE((SELECT max(seq) FROM task_errors WHERE task_id = "
    "$1::text), 0) + 1, attempt_count, $3::bigint, $8::text FROM moved WHERE $8::text "
    "IS NOT NULL), "
    "trimmed AS (DELETE FROM task_errors WHERE $8::text IS NOT NULL AND EXISTS "
    "(SELECT 1 FROM moved) AND task_id = $1::text AND seq <= (SELECT max(seq) FROM "
    "task_errors WHERE task_id = $1::text) + 1 - $13::bigint) "
    "SELECT queue, attempt_count FROM moved"};

// Plain completions of a group, each guarded by state and attempt: $1 ids
// (text[]), $2 attempts (bigint[], NULL for none), $3 now, $4 shard.
// id = ANY(array) is an index scan on the key whatever the group size.
inline constexpr Query kCompleteGroup{
    "voxq_complete_group",
    "WITH moved AS (UPDATE tasks t SET state = " VOXQ_SQL_COMPLETED
    ", updated_at = $3::bigint, not_before = 0 WHERE t.id = ANY($1::text[]) AND t.state "
    "= " VOXQ_SQL_PROCESSING
    " AND t.attempt_count = COALESCE(($2::bigint[])[array_position($1::text[], t.id)], "
    "t.attempt_count) RETURNING t.id, t.queue, t.attempt_count), "
    "counted AS (" VOXQ_PG_COUNT_MOVES(
        VOXQ_SQL_PROCESSING, VOXQ_SQL_COMPLETED,
        "$4::smallint") ") SELECT id, queue, attempt_count FROM moved"};

// $1 id
inline constexpr Query kStateOf{"voxq_explain",
                                "SELECT state, attempt_count FROM tasks WHERE id = $1"};
inline constexpr Query kGetTask{"voxq_get", "SELECT " VOXQ_PG_COLUMNS " FROM tasks WHERE id = $1"};
inline constexpr Query kErrorsOf{
    "voxq_get_errors",
    "SELECT attempt, at, message FROM task_errors WHERE task_id = $1 ORDER BY seq"};

// --- Rescue (retry sweep) -------------------------------------------------
// $1 limit
inline constexpr Query kRetryableOldestFirst{
    "voxq_rescue_retryable",
    "SELECT " VOXQ_PG_COLUMNS ", not_before, stalls FROM tasks WHERE state = " VOXQ_SQL_RETRYABLE
    " ORDER BY updated_at LIMIT $1::bigint FOR UPDATE SKIP LOCKED"};
// $1 heartbeat at or before, $2 limit
inline constexpr Query kExpiredLeases{
    "voxq_rescue_expired",
    "SELECT " VOXQ_PG_COLUMNS ", not_before, stalls FROM tasks WHERE state = " VOXQ_SQL_PROCESSING
    " AND heartbeat_at <= $1::bigint ORDER BY heartbeat_at LIMIT $2::bigint FOR UPDATE SKIP "
    "LOCKED"};
// The row is locked by the sweep's transaction. $1 id, $2 to, $3 schedule_at,
// $4 last_error, $5 now, $6 stalls
inline constexpr Query kRescueMove{
    "voxq_rescue_move",
    "UPDATE tasks SET state = $2::smallint, schedule_at = $3::bigint, last_error = $4::text, "
    "updated_at = $5::bigint, not_before = 0, stalls = $6::bigint WHERE id = $1::text"};
// Appends one error and trims the history: $1 id, $2 attempt, $3 at,
// $4 message, $5 errors kept
inline constexpr Query kLogError{
    "voxq_rescue_log",
    "WITH logged AS (INSERT INTO task_errors (task_id, seq, attempt, at, message) SELECT "
    "$1::text, COALESCE(max(seq), 0) + 1, $2::bigint, $3::bigint, $4::text FROM task_errors "
    "WHERE task_id = $1::text) DELETE FROM task_errors WHERE task_id = $1::text AND seq <= "
    "(SELECT max(seq) FROM task_errors WHERE task_id = $1::text) + 1 - $5::bigint"};

// --- List and purge, one statement per state ------------------------------
// The state is a literal so the planner can use the state's partial index.
// $1 ids below, $2 queue ('' for all), $3 limit
inline constexpr Query kListAnyState{
    "voxq_list", "SELECT " VOXQ_PG_COLUMNS
                 " FROM tasks WHERE id < $1 AND ($2 = '' OR queue = $2) ORDER BY id DESC "
                 "LIMIT $3::bigint"};
#define VOXQ_PG_LIST(state)                                      \
    "SELECT " VOXQ_PG_COLUMNS " FROM tasks WHERE state = " state \
    " AND id < $1 AND ($2 = '' OR queue = $2) ORDER BY id DESC LIMIT $3::bigint"
// Indexed by TaskState.
inline constexpr std::array<Query, 6> kListInState = {{
    {"voxq_list_pending", VOXQ_PG_LIST(VOXQ_SQL_PENDING)},
    {"voxq_list_processing", VOXQ_PG_LIST(VOXQ_SQL_PROCESSING)},
    {"voxq_list_completed", VOXQ_PG_LIST(VOXQ_SQL_COMPLETED)},
    {"voxq_list_retryable", VOXQ_PG_LIST(VOXQ_SQL_RETRYABLE)},
    {"voxq_list_cancelled", VOXQ_PG_LIST(VOXQ_SQL_CANCELLED)},
    {"voxq_list_discarded", VOXQ_PG_LIST(VOXQ_SQL_DISCARDED)},
}};
#undef VOXQ_PG_LIST

// Up to $2 tasks updated at or before $1, oldest id first, with their error
// history, counted in shard $3; a bounded statement, so a large purge never
// holds many row locks. Finished states only (no name elsewhere); indexed by
// TaskState.
#define VOXQ_PG_PURGE(state)                                                                     \
    "WITH gone AS (DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE state = " state     \
    " AND updated_at <= $1::bigint ORDER BY id LIMIT $2::bigint FOR UPDATE SKIP LOCKED) "        \
    "RETURNING id, queue), errors AS (DELETE FROM task_errors WHERE task_id IN (SELECT id FROM " \
    "gone)), counted AS (" VOXQ_PG_COUNT(                                                        \
        "(SELECT queue, " state                                                                  \
        "::smallint AS state, -count(*) AS d FROM gone GROUP BY queue) "                         \
        "AS n",                                                                                  \
        "$3::smallint") ") SELECT count(*) FROM gone"
inline constexpr std::array<Query, 6> kPurgeInState = {{
    {nullptr, nullptr},
    {nullptr, nullptr},
    {"voxq_purge_completed", VOXQ_PG_PURGE(VOXQ_SQL_COMPLETED)},
    {nullptr, nullptr},
    {"voxq_purge_cancelled", VOXQ_PG_PURGE(VOXQ_SQL_CANCELLED)},
    {"voxq_purge_discarded", VOXQ_PG_PURGE(VOXQ_SQL_DISCARDED)},
}};
#undef VOXQ_PG_PURGE

// --- Counts ---------------------------------------------------------------
// $1 queue ('' for all)
inline constexpr Query kCount{
    "voxq_count",
    "SELECT state, sum(n) FROM task_counts WHERE ($1 = '' OR queue = $1) GROUP BY state"};
inline constexpr Query kCountsByQueue{"voxq_overview_counts",
                                      "SELECT queue, state, sum(n) FROM task_counts GROUP BY "
                                      "queue, state HAVING sum(n) > 0 ORDER BY queue"};
// $1 now
inline constexpr Query kOldestDueByQueue{
    "voxq_overview_due", "SELECT queue, min(schedule_at) FROM tasks WHERE state = " VOXQ_SQL_PENDING
                         " AND schedule_at <= $1::bigint GROUP BY queue"};
// $1 queue, $2 state, $3 shard, $4 delta
inline constexpr Query kAddCount{
    "voxq_count_add",
    "INSERT INTO task_counts (queue, state, shard, n) VALUES ($1, $2::smallint, $3::smallint, "
    "$4::bigint) ON CONFLICT (queue, state, shard) DO UPDATE SET n = task_counts.n + excluded.n"};
// $1 channel
inline constexpr Query kNotify{"voxq_notify", "SELECT pg_notify($1, '')"};

// --- Rate buckets ---------------------------------------------------------
// $1 name: the row, locked until the transaction ends.
inline constexpr Query kLockBucket{
    "voxq_rate_read",
    "SELECT tokens, updated_at FROM rate_buckets WHERE name = $1::text FOR UPDATE"};
// A full bucket on first use, by whichever taker comes first: $1 name,
// $2 tokens, $3 now
inline constexpr Query kCreateBucket{
    "voxq_rate_create",
    "INSERT INTO rate_buckets (name, tokens, updated_at) VALUES ($1::text, $2::float8, "
    "$3::bigint) ON CONFLICT (name) DO NOTHING"};
// $1 name, $2 tokens, $3 updated_at
inline constexpr Query kWriteBucket{
    "voxq_rate_write",
    "UPDATE rate_buckets SET tokens = $2::float8, updated_at = $3::bigint WHERE name = $1::text"};

// --- Check (PostgreSQL-only; the shared rules are in store_check.hpp) ------
inline constexpr const char* kAmcheckInstalled =
    "SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'";
inline constexpr const char* kCheckIndexes =
    "SELECT bt_index_check(i.indexrelid) FROM pg_index i JOIN pg_class r ON r.oid = "
    "i.indexrelid JOIN pg_am a ON a.oid = r.relam WHERE a.amname = 'btree' AND i.indrelid IN "
    "('tasks'::regclass, 'task_errors'::regclass, 'task_counts'::regclass)";
inline constexpr const char* kProgressPastLastItem =
    "SELECT count(*), min(id) FROM tasks WHERE items_delivered > json_array_length(items::json)";

#undef VOXQ_PG_COUNT_MOVES
#undef VOXQ_PG_COUNT
#undef VOXQ_PG_COLUMNS_T
#undef VOXQ_PG_COLUMNS

}  // namespace voxq::pg::sql
