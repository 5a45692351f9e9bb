// The SQLite schema, as numbered migrations built into the binary. Applied in
// order inside one write transaction (BEGIN IMMEDIATE), so processes that start
// together serialize on it and each migration runs exactly once.
// Never edit a released migration: add the next one.
#pragma once

#include <array>

#include "store/store_rules.hpp"

namespace voxq::sqlite {

using detail::Migration;

// Times are INTEGER microseconds since the Unix epoch; state is TaskState's value.
inline constexpr std::array<Migration, 4> kMigrations = {{
    {1, R"sql(
CREATE TABLE tasks (
    id            TEXT PRIMARY KEY,
    queue         TEXT NOT NULL,
    state         INTEGER NOT NULL,
    priority      INTEGER NOT NULL DEFAULT 0,
    schedule_at   INTEGER NOT NULL,
    items         TEXT NOT NULL,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    dedup_key     TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL DEFAULT 0,
    not_before    INTEGER NOT NULL DEFAULT 0
);
-- Partial indexes: each holds only the rows one hot query looks at, so claims
-- and sweeps stay fast however many finished tasks are kept.
-- Due tasks in claim order, per queue (claims across queues merge the queues).
CREATE INDEX tasks_due ON tasks (queue, priority DESC, schedule_at, id) WHERE state = 0;
CREATE INDEX tasks_leased ON tasks (heartbeat_at) WHERE state = 1;
CREATE INDEX tasks_retryable ON tasks (updated_at) WHERE state = 3;
-- Listing and purging the parked states. (No index on state as a whole: it would
-- move an entry on every state change. COMPLETED is listed and purged in id
-- order through the primary key, where finished tasks are the bulk anyway.)
CREATE INDEX tasks_cancelled ON tasks (id) WHERE state = 4;
CREATE INDEX tasks_discarded ON tasks (id) WHERE state = 5;
-- Idempotent enqueue: one task per (queue, dedup_key).
CREATE UNIQUE INDEX tasks_dedup ON tasks (queue, dedup_key) WHERE dedup_key IS NOT NULL;

CREATE TABLE task_errors (
    task_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

-- Task counts per queue and state, kept in the same transaction as every change,
-- so get_queue_stats reads a handful of rows instead of counting millions.
CREATE TABLE task_counts (
    queue TEXT NOT NULL,
    state INTEGER NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;
)sql"},
    // Per-item delivery progress (issue 4): items [0, items_delivered) are done.
    {2, R"sql(
ALTER TABLE tasks ADD COLUMN items_delivered INTEGER NOT NULL DEFAULT 0;
)sql"},
    // Poison tasks (issue 11): how many times the task's lease expired.
    {3, R"sql(
ALTER TABLE tasks ADD COLUMN stalls INTEGER NOT NULL DEFAULT 0;
)sql"},
    // Shared rate limits of speech engines (issue 16): one token bucket a row.
    {4, R"sql(
CREATE TABLE rate_buckets (
    name       TEXT PRIMARY KEY,
    tokens     REAL NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
)sql"},
}};

}  // namespace voxq::sqlite
