// The PostgreSQL schema, as numbered migrations built into the binary. They run
// in one transaction under a transaction-level advisory lock, so processes that
// start together serialize and each migration runs exactly once. Objects live in
// the configured schema (search_path). Never edit a released migration.
#pragma once

#include <array>

#include "store/store_rules.hpp"

namespace voxq::pg {

using detail::Migration;

// Times are BIGINT microseconds since the Unix epoch; state is TaskState's value.
inline constexpr std::array<Migration, 4> kMigrations = {{
    {1, R"sql(
CREATE TABLE tasks (
    id            TEXT PRIMARY KEY,
    queue         TEXT NOT NULL,
    state         SMALLINT NOT NULL,
    priority      BIGINT NOT NULL DEFAULT 0,
    schedule_at   BIGINT NOT NULL,
    items         TEXT NOT NULL,
    attempt_count BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    dedup_key     TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL DEFAULT 0,
    not_before    BIGINT NOT NULL DEFAULT 0
);
-- Partial indexes: the claim touches only due PENDING rows, the sweep only
-- leased and RETRYABLE rows, however many finished tasks are kept.
CREATE INDEX tasks_due ON tasks (priority DESC, schedule_at, id) WHERE state = 0;
CREATE INDEX tasks_due_by_queue ON tasks (queue, priority DESC, schedule_at, id) WHERE state = 0;
CREATE INDEX tasks_leased ON tasks (heartbeat_at) WHERE state = 1;
CREATE INDEX tasks_retryable ON tasks (updated_at) WHERE state = 3;
CREATE INDEX tasks_cancelled ON tasks (id) WHERE state = 4;
CREATE INDEX tasks_discarded ON tasks (id) WHERE state = 5;
CREATE UNIQUE INDEX tasks_dedup ON tasks (queue, dedup_key) WHERE dedup_key IS NOT NULL;

CREATE TABLE task_errors (
    task_id TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- Counts per queue and state, in shards: each connection adds its deltas to its
-- own shard in the same statement as the change, so concurrent workers do not
-- queue up on one counter row; stats sum the shards.
CREATE TABLE task_counts (
    queue TEXT NOT NULL,
    state SMALLINT NOT NULL,
    shard SMALLINT NOT NULL,
    n     BIGINT NOT NULL,
    PRIMARY KEY (queue, state, shard)
);
)sql"},
    // Per-item delivery progress (issue 4): items [0, items_delivered) are done.
    {2, R"sql(
ALTER TABLE tasks ADD COLUMN items_delivered BIGINT NOT NULL DEFAULT 0;
)sql"},
    // Poison tasks (issue 11): how many times the task's lease expired.
    {3, R"sql(
ALTER TABLE tasks ADD COLUMN stalls BIGINT NOT NULL DEFAULT 0;
)sql"},
    // Shared rate limits of speech engines (issue 16): one token bucket a row.
    {4, R"sql(
CREATE TABLE rate_buckets (
    name       TEXT PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);
)sql"},
}};

}  // namespace voxq::pg
