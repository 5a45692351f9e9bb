#include "store/postgres/postgres_store.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <stop_token>
#include <thread>

#include "store/postgres/pg_completion_groups.hpp"
#include "store/postgres/pg_connection.hpp"
#include "store/postgres/pg_listener.hpp"
#include "store/postgres/pg_migrations.hpp"
#include "store/postgres/pg_pool.hpp"
#include "store/sql_states.hpp"
#include "store/store_check.hpp"
#include "store/store_rules.hpp"
#include "store/task_row.hpp"
#include "voxq/errors.hpp"

namespace voxq::pg {

namespace {

constexpr int kCountShards = 32;
constexpr int kGroupsInFlight = 4;  // completion groups running at once per process

Param flag(bool b) {
    return std::string(b ? "true" : "false");
}

#define VOXQ_PG_COLUMNS                                                                         \
    "id, queue, state, priority, schedule_at, items, attempt_count, max_attempts, last_error, " \
    "dedup_key, created_at, updated_at, heartbeat_at, items_delivered"
#define VOXQ_PG_COLUMNS_T                                                                     \
    "t.id, t.queue, t.state, t.priority, t.schedule_at, t.items, t.attempt_count, "           \
    "t.max_attempts, t.last_error, t.dedup_key, t.created_at, t.updated_at, t.heartbeat_at, " \
    "t.items_delivered"
// Adds the rows of `source` (queue, state, delta) to this connection's shard.
#define VOXQ_PG_COUNT(source, shard_param)                                               \
    "INSERT INTO task_counts (queue, state, shard, n) SELECT queue, state, " shard_param \
    ", d FROM " source                                                                   \
    " ON CONFLICT (queue, state, shard) DO UPDATE SET n = task_counts.n + excluded.n"

Task read_task(const PgResult& r, int row) {
    Task t;
    t.id = r.text(row, 0);
    t.queue = r.text(row, 1);
    t.state = static_cast<TaskState>(r.int64(row, 2));
    t.priority = r.int64(row, 3);
    t.schedule_at = detail::us_to_seconds(r.int64(row, 4));
    t.items = detail::items_from_row(r.text(row, 5));
    t.attempt_count = r.int64(row, 6);
    t.max_attempts = r.int64(row, 7);
    t.last_error = r.text(row, 8);
    t.dedup_key = r.is_null(row, 9) ? std::string() : std::string(r.text(row, 9));
    t.created_at = detail::us_to_seconds(r.int64(row, 10));
    t.updated_at = detail::us_to_seconds(r.int64(row, 11));
    t.heartbeat_at = detail::us_to_seconds(r.int64(row, 12));
    t.items_delivered = r.int64(row, 13);
    return t;
}

class PostgresStore final : public Store {
  public:
    PostgresStore(std::string conninfo, const QueueConfig& config, std::shared_ptr<Logger> logger)
        : logger_(std::move(logger)),
          target_{std::move(conninfo), config.postgres_schema,
                  static_cast<int>(config.postgres_query_timeout * 1000)},
          schema_(config.postgres_schema),
          channel_("voxq_" + config.postgres_schema),
          pool_(target_, static_cast<std::size_t>(config.postgres_pool_size), kCountShards) {}

    ~PostgresStore() override { close(); }
    PostgresStore(const PostgresStore&) = delete;
    PostgresStore& operator=(const PostgresStore&) = delete;

    void migrate() override {
        with_conn([&](PgConnection& c, int) {
            Transaction txn(c);
            // One migrator per schema at a time, across processes and machines.
            c.run_once("SELECT pg_advisory_xact_lock(hashtext($1))", {"voxq migrate " + schema_});
            c.exec(("CREATE SCHEMA IF NOT EXISTS " + c.quote_identifier(schema_)).c_str());
            c.use_schema(schema_);  // the schema may be new: resolve names again
            c.exec(
                "CREATE TABLE IF NOT EXISTS voxq_schema (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
            const std::int64_t current =
                c.run_once("SELECT COALESCE(MAX(version), 0) FROM voxq_schema", {}).int64(0, 0);
            for (const Migration& m : kMigrations) {
                if (m.version <= current) continue;
                c.exec(m.sql);
                c.run_once("INSERT INTO voxq_schema (version) VALUES ($1)", {param(m.version)});
            }
            txn.commit();
        });
    }

    std::int64_t schema_version() override {
        return with_conn([&](PgConnection& c, int) -> std::int64_t {
            if (c.run_once("SELECT to_regclass('voxq_schema') IS NOT NULL", {}).text(0, 0) != "t") {
                return 0;
            }
            return c.run_once("SELECT COALESCE(MAX(version), 0) FROM voxq_schema", {}).int64(0, 0);
        });
    }

    TaskInsertResult task_insert(const TaskInsertParams& params) override {
        const std::vector<Task>& tasks = *params.tasks;
        nlohmann::json rows = nlohmann::json::array();
        bool any_dedup = false;
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            const Task& t = tasks[i];
            any_dedup = any_dedup || !t.dedup_key.empty();
            rows.push_back({{"ord", i},
                            {"id", t.id},
                            {"queue", t.queue},
                            {"priority", t.priority},
                            {"schedule_at", detail::seconds_to_us(t.schedule_at)},
                            {"items", detail::items_to_row(t.items)},
                            {"max_attempts", t.max_attempts},
                            {"dedup_key", t.dedup_key.empty() ? nlohmann::json(nullptr)
                                                              : nlohmann::json(t.dedup_key)},
                            {"created_at", detail::seconds_to_us(t.created_at)},
                            {"updated_at", detail::seconds_to_us(t.updated_at)}});
        }
        return with_conn([&](PgConnection& c, int shard) {
            Transaction txn(c);
            TaskInsertResult result;
            std::vector<std::string> inserted_ids;
            try {
                // One statement for the whole batch: the rows travel as one JSON
                // parameter; new rows are counted in the same statement.
                const PgResult r = c.run(
                    "voxq_insert",
                    "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(ord INT, id "
                    "TEXT, queue TEXT, priority BIGINT, schedule_at BIGINT, items TEXT, "
                    "max_attempts BIGINT, dedup_key TEXT, created_at BIGINT, updated_at BIGINT)), "
                    "ins AS (INSERT INTO tasks (id, queue, state, priority, schedule_at, items, "
                    "max_attempts, dedup_key, created_at, updated_at) SELECT id, queue, 0, "
                    "priority, schedule_at, items, max_attempts, dedup_key, created_at, updated_at "
                    "FROM input ORDER BY ord ON CONFLICT (queue, dedup_key) WHERE dedup_key IS NOT "
                    "NULL DO NOTHING RETURNING id, queue), "
                    "counted AS (" VOXQ_PG_COUNT(
                        "(SELECT queue, 0::smallint AS state, count(*) AS d FROM ins GROUP BY "
                        "queue) AS n",
                        "$2::smallint") "), "
                    // Delivered at commit to every process LISTENing on the channel.
                    "notified AS (SELECT pg_notify($3, '') WHERE EXISTS (SELECT 1 FROM ins)) "
                    "SELECT id FROM ins, (SELECT count(*) FROM notified) AS n",
                    {rows.dump(), param(shard), channel_});
                for (int i = 0; i < r.rows(); ++i) inserted_ids.emplace_back(r.text(i, 0));
            } catch (const PgStatementError& e) {
                if (e.sqlstate() == "23505" && e.constraint() == "tasks_pkey") {
                    txn.rollback();
                    throw DuplicateTaskError(first_existing_id(c, tasks));
                }
                throw;
            }
            result.inserted = inserted_ids.size();
            if (any_dedup && result.inserted < tasks.size()) {
                // Tasks not inserted met an existing dedup key: report its task's id.
                std::sort(inserted_ids.begin(), inserted_ids.end());
                for (std::size_t i = 0; i < tasks.size(); ++i) {
                    const Task& t = tasks[i];
                    if (t.dedup_key.empty() ||
                        std::binary_search(inserted_ids.begin(), inserted_ids.end(), t.id)) {
                        continue;
                    }
                    const PgResult r = c.run(
                        "voxq_dedup_id", "SELECT id FROM tasks WHERE queue = $1 AND dedup_key = $2",
                        {t.queue, t.dedup_key});
                    if (r.rows() == 1) result.deduplicated.emplace_back(i, r.text(0, 0));
                }
            }
            txn.commit();
            return result;
        });
    }

    std::vector<Task> task_claim(const TaskClaimParams& p) override {
        return with_conn([&](PgConnection& c, int shard) {
        // One statement: pick due rows in claim order, skipping rows another
        // worker holds, move them to PROCESSING and count the move.
#define VOXQ_PG_CLAIM(filter)                                                                    \
    "WITH picked AS (SELECT id FROM tasks WHERE state = " VOXQ_SQL_PENDING                       \
    " AND schedule_at <= $1::bigint " filter                                                     \
    " ORDER BY priority DESC, schedule_at, id LIMIT $2::bigint FOR UPDATE SKIP LOCKED), "        \
    "moved AS (UPDATE tasks t SET state = " VOXQ_SQL_PROCESSING                                  \
    ", attempt_count = t.attempt_count + 1, "                                                    \
    "heartbeat_at = $1::bigint, updated_at = $1::bigint FROM picked WHERE t.id = picked.id "     \
    "RETURNING " VOXQ_PG_COLUMNS_T "), counted AS (" VOXQ_PG_COUNT(                              \
        "(SELECT queue, s.state, s.sign * count(*) AS d FROM moved, (VALUES (0::smallint, -1), " \
        "(1::smallint, 1)) AS s(state, sign) GROUP BY queue, s.state, s.sign) AS n",             \
        "$3::smallint") ") SELECT * FROM moved"
            const PgResult r =
                p.queue.empty() ? c.run("voxq_claim", VOXQ_PG_CLAIM(""),
                                        {param(p.now_us), param(p.limit), param(shard)})
                                : c.run("voxq_claim_queue", VOXQ_PG_CLAIM("AND queue = $4"),
                                        {param(p.now_us), param(p.limit), param(shard), p.queue});
#undef VOXQ_PG_CLAIM
            std::vector<Task> claimed;
            claimed.reserve(static_cast<std::size_t>(r.rows()));
            for (int i = 0; i < r.rows(); ++i) claimed.push_back(read_task(r, i));
            detail::sort_in_claim_order(claimed);
            return claimed;
        });
    }

    TaskStateChange task_set_state(const TaskSetStateParams& p) override {
        const bool plain_complete = p.from == TaskState::PROCESSING &&
                                    p.to == TaskState::COMPLETED && !p.error && !p.not_before_us &&
                                    p.attempt_delta == 0 && !p.reset_attempts && !p.schedule_now &&
                                    !p.touch_heartbeat && !p.items_delivered;
        if (plain_complete) {
            if (auto done = completions_.complete(p)) return *done;
            // Not completed by its group: run alone, which completes it or says why not.
        }
        return set_state_alone(p);
    }

    // One guarded transition in one statement (moves the row, counts the move,
    // records the error).
    TaskStateChange set_state_alone(const TaskSetStateParams& p) {
        return with_conn([&](PgConnection& c, int shard) {
            const PgResult r = c.run(
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
                "SELECT queue, attempt_count FROM moved",
                {p.id, param(static_cast<std::int64_t>(p.to)), param(p.now_us),
                 flag(p.reset_attempts), param(p.attempt_delta), flag(p.schedule_now),
                 flag(p.touch_heartbeat), p.error ? Param(*p.error) : null_param(),
                 p.not_before_us ? param(*p.not_before_us) : null_param(),
                 param(static_cast<std::int64_t>(p.from)),
                 p.attempt ? param(*p.attempt) : null_param(), param(shard),
                 param(p.error_history_limit),
                 p.items_delivered ? param(*p.items_delivered) : null_param()});
            if (r.rows() == 0) explain_refusal(c, p);
            if (p.to == TaskState::PENDING) notify(c);
            return TaskStateChange{std::string(r.text(0, 0)), r.int64(0, 1)};
        });
    }

    std::vector<Task> task_rescue(const TaskRescueParams& p) override {
        return with_conn([&](PgConnection& c, int shard) {
            Transaction txn(c);
            struct Candidate {
                Task task;
                std::int64_t not_before;
                std::int64_t stalls;
            };
            std::vector<Candidate> candidates;
            {
                const PgResult r = c.run("voxq_rescue_retryable",
                                         "SELECT " VOXQ_PG_COLUMNS
                                         ", not_before, stalls FROM tasks WHERE "
                                         "state = " VOXQ_SQL_RETRYABLE
                                         " ORDER BY updated_at LIMIT $1::bigint FOR "
                                         "UPDATE SKIP LOCKED",
                                         {param(p.limit)});
                for (int i = 0; i < r.rows(); ++i)
                    candidates.push_back({read_task(r, i), r.int64(i, 14), r.int64(i, 15)});
            }
            const auto remaining = p.limit - static_cast<std::int64_t>(candidates.size());
            if (remaining > 0) {
                const PgResult r =
                    c.run("voxq_rescue_expired",
                          "SELECT " VOXQ_PG_COLUMNS
                          ", not_before, stalls FROM tasks WHERE "
                          "state = " VOXQ_SQL_PROCESSING
                          " AND heartbeat_at <= $1::bigint ORDER BY "
                          "heartbeat_at LIMIT $2::bigint FOR UPDATE SKIP LOCKED",
                          {param(p.now_us - p.visibility_timeout_us), param(remaining)});
                for (int i = 0; i < r.rows(); ++i)
                    candidates.push_back({read_task(r, i), r.int64(i, 14), r.int64(i, 15)});
            }
            std::map<std::pair<std::string, int>, std::int64_t> deltas;
            std::vector<Task> moved;
            for (auto& [task, not_before, stalls] : candidates) {
                const detail::RescueMove move = detail::plan_rescue(task, not_before, stalls, p);
                // The rows are locked by this transaction: the guard always holds.
                c.run("voxq_rescue_move",
                      "UPDATE tasks SET state = $2::smallint, schedule_at = $3::bigint, last_error "
                      "= $4::text, updated_at = $5::bigint, not_before = 0, stalls = $6::bigint "
                      "WHERE id = $1::text",
                      {task.id, param(static_cast<std::int64_t>(task.state)),
                       param(move.schedule_us), task.last_error, param(p.now_us), param(stalls)});
                if (move.lease_expired) {
                    c.run("voxq_rescue_log",
                          "WITH logged AS (INSERT INTO task_errors (task_id, seq, attempt, at, "
                          "message) SELECT $1::text, COALESCE(max(seq), 0) + 1, $2::bigint, "
                          "$3::bigint, $4::text FROM task_errors WHERE task_id = $1::text) "
                          "DELETE FROM task_errors WHERE task_id = $1::text AND seq <= (SELECT "
                          "max(seq) FROM task_errors WHERE task_id = $1::text) + 1 - $5::bigint",
                          {task.id, param(task.attempt_count), param(p.now_us), task.last_error,
                           param(p.error_history_limit)});
                }
                deltas[{task.queue, static_cast<int>(move.from)}] -= 1;
                deltas[{task.queue, static_cast<int>(task.state)}] += 1;
                moved.push_back(std::move(task));
            }
            add_counts(c, shard, deltas);
            if (!moved.empty()) notify(c);
            txn.commit();
            return moved;
        });
    }

    std::optional<Task> task_get(const std::string& id) override {
        return with_conn([&](PgConnection& c, int) -> std::optional<Task> {
            Transaction txn(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
            const PgResult r =
                c.run("voxq_get", "SELECT " VOXQ_PG_COLUMNS " FROM tasks WHERE id = $1", {id});
            if (r.rows() == 0) return std::nullopt;
            Task t = read_task(r, 0);
            const PgResult e = c.run("voxq_get_errors",
                                     "SELECT attempt, at, message FROM task_errors WHERE task_id = "
                                     "$1 ORDER BY seq",
                                     {id});
            for (int i = 0; i < e.rows(); ++i) {
                t.error_history.push_back(TaskError{e.int64(i, 0),
                                                    detail::us_to_seconds(e.int64(i, 1)),
                                                    std::string(e.text(i, 2))});
            }
            txn.commit();
            return t;
        });
    }

    TaskPage task_list(const TaskListParams& p) override {
        return with_conn([&](PgConnection& c, int) {
            const std::vector<Param> args{detail::list_start(p.cursor), p.queue,
                                          param(p.limit + 1)};
            // The state is a literal so the planner can use the state's partial index.
#define VOXQ_PG_LIST(state)                                      \
    "SELECT " VOXQ_PG_COLUMNS " FROM tasks WHERE state = " state \
    " AND id < $1 AND ($2 = '' OR "                              \
    "queue = $2) ORDER BY id DESC LIMIT $3::bigint"
            const PgResult r = [&] {
                if (!p.state) {
                    return c.run("voxq_list",
                                 "SELECT " VOXQ_PG_COLUMNS
                                 " FROM tasks WHERE id < $1 AND ($2 = '' "
                                 "OR queue = $2) ORDER BY id DESC LIMIT $3::bigint",
                                 args);
                }
                switch (*p.state) {
                    case TaskState::PENDING:
                        return c.run("voxq_list_0", VOXQ_PG_LIST(VOXQ_SQL_PENDING), args);
                    case TaskState::PROCESSING:
                        return c.run("voxq_list_1", VOXQ_PG_LIST(VOXQ_SQL_PROCESSING), args);
                    case TaskState::COMPLETED:
                        return c.run("voxq_list_2", VOXQ_PG_LIST(VOXQ_SQL_COMPLETED), args);
                    case TaskState::RETRYABLE:
                        return c.run("voxq_list_3", VOXQ_PG_LIST(VOXQ_SQL_RETRYABLE), args);
                    case TaskState::CANCELLED:
                        return c.run("voxq_list_4", VOXQ_PG_LIST(VOXQ_SQL_CANCELLED), args);
                    case TaskState::DISCARDED:
                        return c.run("voxq_list_5", VOXQ_PG_LIST(VOXQ_SQL_DISCARDED), args);
                }
                throw StoreError("list: unknown state", false);
            }();
#undef VOXQ_PG_LIST
            std::vector<Task> fetched;
            fetched.reserve(static_cast<std::size_t>(r.rows()));
            for (int i = 0; i < r.rows(); ++i) fetched.push_back(read_task(r, i));
            return detail::make_page(std::move(fetched), p.limit);
        });
    }

    std::int64_t task_purge(const TaskPurgeParams& p) override {
        // Bounded statements, so a large purge never holds many row locks.
        return detail::purge_in_chunks(p, [&](TaskState state) {
            return with_conn([&](PgConnection& c, int shard) {
                const std::vector<Param> args{param(p.updated_before_us), param(p.chunk),
                                              param(shard)};
#define VOXQ_PG_PURGE(state)                                                                     \
    "WITH gone AS (DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE state = " state     \
    " AND updated_at <= $1::bigint ORDER BY id LIMIT $2::bigint FOR UPDATE SKIP LOCKED) "        \
    "RETURNING id, queue), errors AS (DELETE FROM task_errors WHERE task_id IN (SELECT id FROM " \
    "gone)), counted AS (" VOXQ_PG_COUNT(                                                        \
        "(SELECT queue, " state                                                                  \
        "::smallint AS state, -count(*) AS d FROM gone GROUP BY queue) AS n",                    \
        "$3::smallint") ") SELECT count(*) FROM gone"
                switch (state) {
                    case TaskState::COMPLETED:
                        return c.run("voxq_purge_2", VOXQ_PG_PURGE(VOXQ_SQL_COMPLETED), args)
                            .int64(0, 0);
                    case TaskState::CANCELLED:
                        return c.run("voxq_purge_4", VOXQ_PG_PURGE(VOXQ_SQL_CANCELLED), args)
                            .int64(0, 0);
                    case TaskState::DISCARDED:
                        return c.run("voxq_purge_5", VOXQ_PG_PURGE(VOXQ_SQL_DISCARDED), args)
                            .int64(0, 0);
                    default:
                        break;
                }
#undef VOXQ_PG_PURGE
                throw StoreError("purge: only finished states can be purged", false);
            });
        });
    }

    StateCounts task_count(const TaskCountParams& p) override {
        return with_conn([&](PgConnection& c, int) {
            const PgResult r = c.run("voxq_count",
                                     "SELECT state, sum(n) FROM task_counts WHERE ($1 = '' OR "
                                     "queue = $1) GROUP BY state",
                                     {p.queue});
            StateCounts counts{};
            for (int i = 0; i < r.rows(); ++i) {
                const auto state = static_cast<std::size_t>(r.int64(i, 0));
                if (state < counts.size()) counts[state] = r.int64(i, 1);
            }
            return counts;
        });
    }

    std::vector<QueueOverviewRow> task_overview(std::int64_t now_us) override {
        return with_conn([&](PgConnection& c, int) {
            std::vector<QueueOverviewRow> out;
            const PgResult counts =
                c.run("voxq_overview_counts",
                      "SELECT queue, state, sum(n) FROM task_counts GROUP BY queue, state "
                      "HAVING sum(n) > 0 ORDER BY queue",
                      {});
            for (int i = 0; i < counts.rows(); ++i) {
                const std::string queue(counts.text(i, 0));
                if (out.empty() || out.back().queue != queue) out.push_back({queue, {}, {}});
                const auto state = static_cast<std::size_t>(counts.int64(i, 1));
                if (state < out.back().counts.size()) out.back().counts[state] = counts.int64(i, 2);
            }
            const PgResult due =
                c.run("voxq_overview_due",
                      "SELECT queue, min(schedule_at) FROM tasks WHERE state = " VOXQ_SQL_PENDING
                      " "
                      "AND schedule_at <= $1::bigint GROUP BY queue",
                      {param(now_us)});
            for (int i = 0; i < due.rows(); ++i) {
                const std::string queue(due.text(i, 0));
                for (QueueOverviewRow& q : out) {
                    if (q.queue == queue) q.oldest_due_us = due.int64(i, 1);
                }
            }
            return out;
        });
    }

    std::int64_t rate_take(const RateTakeParams& p) override {
        return with_conn([&](PgConnection& c, int) {
            Transaction txn(c);
            // Locked in name order, so two takers of the same buckets cannot deadlock.
            std::vector<std::size_t> order(p.buckets.size());
            for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
            std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
                return p.buckets[a].name < p.buckets[b].name;
            });
            std::vector<std::optional<detail::BucketLevel>> stored(p.buckets.size());
            auto lock_row = [&](std::size_t i) {
                const PgResult r = c.run(
                    "voxq_rate_read",
                    "SELECT tokens, updated_at FROM rate_buckets WHERE name = $1::text FOR UPDATE",
                    {p.buckets[i].name});
                if (r.rows() == 1) stored[i] = detail::BucketLevel{r.real(0, 0), r.int64(0, 1)};
                return r.rows() == 1;
            };
            for (const std::size_t i : order) {
                if (lock_row(i)) continue;
                // First use: a full bucket, inserted by whichever taker comes first,
                // so two first takers cannot both spend one fresh burst.
                c.run("voxq_rate_create",
                      "INSERT INTO rate_buckets (name, tokens, updated_at) VALUES ($1::text, "
                      "$2::float8, $3::bigint) ON CONFLICT (name) DO NOTHING",
                      {p.buckets[i].name, real_param(p.buckets[i].burst), param(p.now_us)});
                lock_row(i);
            }
            const detail::RatePlan plan = detail::plan_rate_take(p, stored);
            for (const std::size_t i : order) {
                if (plan.after.empty()) break;
                c.run("voxq_rate_write",
                      "UPDATE rate_buckets SET tokens = $2::float8, updated_at = $3::bigint "
                      "WHERE name = $1::text",
                      {p.buckets[i].name, real_param(plan.after[i].tokens),
                       param(plan.after[i].updated_us)});
            }
            txn.commit();
            return plan.wait_us;
        });
    }

    // LISTEN on a connection of its own, in a thread that calls `on_work` for each
    // notification, and reconnects (then calls `on_work` once, in case it missed
    // one) when the connection drops.
    void subscribe_to_work(std::function<void()> on_work) override {
        std::lock_guard lock(listener_mutex_);
        if (listener_.joinable() || pool_.closed()) return;
        listener_ = std::jthread([this, on_work = std::move(on_work)](const std::stop_token& stop) {
            listen_for_work(target_, channel_, stop, on_work, *logger_);
        });
    }

    std::vector<StoreFinding> check() override {
        std::vector<StoreFinding> out;
        with_conn([&](PgConnection& c, int) {
            // One snapshot: the counters and the rows are read as of one moment,
            // so writers running meanwhile cannot make them disagree.
            Transaction txn(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
            // Each query behind a savepoint: one failure does not hide the rest.
            auto guarded = [&](const std::string& what, const std::function<void()>& fn) {
                c.exec("SAVEPOINT voxq_check");
                try {
                    fn();
                    c.exec("RELEASE SAVEPOINT voxq_check");
                } catch (const StoreError& e) {
                    out.push_back({"integrity", "cannot read " + what + ": " + e.what()});
                    c.exec("ROLLBACK TO SAVEPOINT voxq_check");
                }
            };
            std::int64_t version = 0;
            guarded("the schema version", [&] {
                if (c.run_once("SELECT to_regclass('voxq_schema') IS NOT NULL", {}).text(0, 0) ==
                    "t") {
                    version = c.run_once("SELECT COALESCE(MAX(version), 0) FROM voxq_schema", {})
                                  .int64(0, 0);
                }
            });
            const auto latest = static_cast<std::int64_t>(kMigrations.back().version);
            detail::check_schema_version(version, latest, out);
            if (version < latest) return;
            // PostgreSQL keeps its own pages consistent (WAL, checksums if enabled);
            // its indexes are verified when the amcheck extension is installed.
            guarded("the indexes (amcheck)", [&] {
                if (c.run_once("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'", {})
                        .int64(0, 0) == 0) {
                    return;
                }
                c.run_once(
                    "SELECT bt_index_check(i.indexrelid) FROM pg_index i JOIN pg_class r ON "
                    "r.oid = i.indexrelid JOIN pg_am a ON a.oid = r.relam WHERE a.amname = "
                    "'btree' AND i.indrelid IN ('tasks'::regclass, 'task_errors'::regclass, "
                    "'task_counts'::regclass)",
                    {});
            });
            guarded("the counters", [&] {
                detail::CountsByQueueState rows;
                detail::CountsByQueueState counters;
                const PgResult counted = c.run_once(detail::kRowCountsSql, {});
                for (int i = 0; i < counted.rows(); ++i) {
                    rows[{std::string(counted.text(i, 0)), counted.int64(i, 1)}] =
                        counted.int64(i, 2);
                }
                const PgResult sums = c.run_once(detail::kCounterSumsSql, {});
                for (int i = 0; i < sums.rows(); ++i) {
                    if (sums.int64(i, 2) != 0) {
                        counters[{std::string(sums.text(i, 0)), sums.int64(i, 1)}] =
                            sums.int64(i, 2);
                    }
                }
                detail::compare_counters(rows, counters, out);
            });
            auto rule = [&](const char* broken, const char* sql) {
                guarded(broken, [&] {
                    const PgResult r = c.run_once(sql, {});
                    if (r.rows() > 0) {
                        detail::add_rule_finding(out, broken, r.int64(0, 0),
                                                 std::string(r.text(0, 1)));
                    }
                });
            };
            for (const detail::StateRule& r : detail::kStateRules) rule(r.broken, r.sql);
            rule("items_delivered past the last item",
                 "SELECT count(*), min(id) FROM tasks WHERE items_delivered > "
                 "json_array_length(items::json)");
            guarded("the error history", [&] {
                const PgResult r = c.run_once(detail::kOrphanErrorsSql, {});
                if (r.int64(0, 0) > 0) {
                    out.push_back({"state", std::string(r.text(0, 0)) +
                                                " error history row(s) of a task that is gone, "
                                                "e.g. " +
                                                std::string(r.text(0, 1))});
                }
            });
        });
        return out;
    }

    void close() override {
        if (listener_.joinable()) {
            listener_.request_stop();
            listener_.join();
        }
        pool_.close();
    }

  private:
    void notify(PgConnection& c) {
        c.run("voxq_notify", "SELECT pg_notify($1, '')", {channel_});
    }

    // The statement of a completion group (see CompletionGroups): every task
    // guarded by its state and attempt; a task it did not complete gets no result.
    void run_completions(const std::vector<CompletionGroups::Completion*>& group) {
        // Ids and attempts as PostgreSQL array literals. Task ids are validated
        // to [A-Za-z0-9_.:-], so quoting them needs no escapes.
        std::string ids = "{", attempts = "{";
        std::set<std::string> seen;
        std::int64_t now_us = 0;
        for (const CompletionGroups::Completion* c : group) {
            const TaskSetStateParams& p = *c->params;
            now_us = std::max(now_us, p.now_us);
            if (!seen.insert(p.id).second) continue;  // a repeat runs alone
            if (ids.size() > 1) {
                ids += ',';
                attempts += ',';
            }
            ids += '"' + p.id + '"';
            attempts += p.attempt ? std::to_string(*p.attempt) : std::string("NULL");
        }
        ids += '}';
        attempts += '}';
        try {
            with_conn([&](PgConnection& conn, int shard) {
                // id = ANY(array) is an index scan on the key whatever the group size.
                const PgResult r = conn.run(
                    "voxq_complete_group",
                    "WITH moved AS (UPDATE tasks t SET state = " VOXQ_SQL_COMPLETED
                    ", updated_at = $3::bigint, "
                    "not_before = 0 WHERE t.id = ANY($1::text[]) AND t.state = " VOXQ_SQL_PROCESSING
                    " AND "
                    "t.attempt_count = COALESCE(($2::bigint[])[array_position($1::text[], t.id)], "
                    "t.attempt_count) RETURNING t.id, t.queue, t.attempt_count), "
                    "counted AS (" VOXQ_PG_COUNT(
                        "(SELECT queue, s.state, s.sign * count(*) AS d FROM moved, (VALUES "
                        "(1::smallint, -1), (2::smallint, 1)) AS s(state, sign) GROUP BY queue, "
                        "s.state, s.sign) AS n",
                        "$4::smallint") ") SELECT id, queue, attempt_count FROM moved",
                    {ids, attempts, param(now_us), param(shard)});
                std::map<std::string, TaskStateChange, std::less<>> completed;
                for (int i = 0; i < r.rows(); ++i) {
                    completed.emplace(std::string(r.text(i, 0)),
                                      TaskStateChange{std::string(r.text(i, 1)), r.int64(i, 2)});
                }
                for (CompletionGroups::Completion* c : group) {
                    auto it = completed.find(c->params->id);
                    if (it == completed.end()) continue;
                    c->result = it->second;
                    completed.erase(it);  // a repeated id gets no result: it runs alone
                }
            });
        } catch (const StoreError& e) {
            for (CompletionGroups::Completion* c : group) {
                c->error =
                    std::make_exception_ptr(StoreError(e.what(), e.retryable(), e.in_doubt()));
            }
        }
    }

    // Runs fn(connection, shard) on a pooled connection (see PgPool).
    template <typename F>
    auto with_conn(F&& fn) -> decltype(fn(std::declval<PgConnection&>(), 0)) {
        return pool_.with_conn(std::forward<F>(fn));
    }

    static void add_counts(PgConnection& c, int shard,
                           const std::map<std::pair<std::string, int>, std::int64_t>& deltas) {
        for (const auto& [key, n] : deltas) {
            if (n == 0) continue;
            c.run(
                "voxq_count_add",
                "INSERT INTO task_counts (queue, state, shard, n) VALUES ($1, $2::smallint, "
                "$3::smallint, $4::bigint) ON CONFLICT (queue, state, shard) DO UPDATE SET n = "
                "task_counts.n + excluded.n",
                {key.first, param(static_cast<std::int64_t>(key.second)), param(shard), param(n)});
        }
    }

    [[noreturn]] static void explain_refusal(PgConnection& c, const TaskSetStateParams& p) {
        const PgResult r =
            c.run("voxq_explain", "SELECT state, attempt_count FROM tasks WHERE id = $1", {p.id});
        std::optional<detail::CurrentTask> current;
        if (r.rows() > 0)
            current = detail::CurrentTask{static_cast<TaskState>(r.int64(0, 0)), r.int64(0, 1)};
        detail::throw_refusal(p, current);
    }

    // The first id of `tasks` that is already stored (for DuplicateTaskError).
    static std::string first_existing_id(PgConnection& c, const std::vector<Task>& tasks) {
        nlohmann::json ids = nlohmann::json::array();
        for (const Task& t : tasks) ids.push_back(t.id);
        const PgResult r = c.run("voxq_existing",
                                 "SELECT id FROM tasks WHERE id IN (SELECT "
                                 "jsonb_array_elements_text($1::jsonb)) LIMIT 1",
                                 {ids.dump()});
        return r.rows() > 0 ? std::string(r.text(0, 0)) : std::string("(unknown)");
    }

    std::shared_ptr<Logger> logger_;
    const PgTarget target_;
    const std::string schema_;
    const std::string channel_;  // NOTIFY channel of this schema

    // Plain completions under contention share one statement (run_completions).
    CompletionGroups completions_{
        kGroupsInFlight, [this](const TaskSetStateParams& p) { return set_state_alone(p); },
        [this](const std::vector<CompletionGroups::Completion*>& group) {
            run_completions(group);
        }};

    PgPool pool_;
    std::mutex listener_mutex_;
    std::jthread listener_;  // started once, under listener_mutex_
};

}  // namespace

std::unique_ptr<Store> open_postgres_store(const std::string& conninfo, const QueueConfig& config,
                                           std::shared_ptr<Logger> logger) {
    return std::make_unique<PostgresStore>(conninfo, config, std::move(logger));
}

}  // namespace voxq::pg
