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
#include "store/postgres/pg_queries.hpp"
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
            c.run_once(sql::kMigrateLock, {"voxq migrate " + schema_});
            c.exec(("CREATE SCHEMA IF NOT EXISTS " + c.quote_identifier(schema_)).c_str());
            c.use_schema(schema_);  // the schema may be new: resolve names again
            c.exec(sql::kCreateSchemaTable);
            const std::int64_t current = c.run_once(sql::kSchemaVersion, {}).int64(0, 0);
            for (const Migration& m : kMigrations) {
                if (m.version <= current) continue;
                c.exec(m.sql);
                c.run_once(sql::kRecordMigration, {param(m.version)});
            }
            txn.commit();
        });
    }

    std::int64_t schema_version() override {
        return with_conn([&](PgConnection& c, int) -> std::int64_t {
            if (c.run_once(sql::kSchemaTableExists, {}).text(0, 0) != "t") return 0;
            return c.run_once(sql::kSchemaVersion, {}).int64(0, 0);
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
                const PgResult r = c.run(sql::kInsertTasks, {rows.dump(), param(shard), channel_});
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
                    const PgResult r = c.run(sql::kFindByDedupKey, {t.queue, t.dedup_key});
                    if (r.rows() == 1) result.deduplicated.emplace_back(i, r.text(0, 0));
                }
            }
            txn.commit();
            return result;
        });
    }

    std::vector<Task> task_claim(const TaskClaimParams& p) override {
        return with_conn([&](PgConnection& c, int shard) {
            const PgResult r =
                p.queue.empty()
                    ? c.run(sql::kClaimAny, {param(p.now_us), param(p.limit), param(shard)})
                    : c.run(sql::kClaimFromQueue,
                            {param(p.now_us), param(p.limit), param(shard), p.queue});
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
            const PgResult r =
                c.run(sql::kSetState,
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
                const PgResult r = c.run(sql::kRetryableOldestFirst, {param(p.limit)});
                for (int i = 0; i < r.rows(); ++i)
                    candidates.push_back({read_task(r, i), r.int64(i, 14), r.int64(i, 15)});
            }
            const auto remaining = p.limit - static_cast<std::int64_t>(candidates.size());
            if (remaining > 0) {
                const PgResult r =
                    c.run(sql::kExpiredLeases,
                          {param(p.now_us - p.visibility_timeout_us), param(remaining)});
                for (int i = 0; i < r.rows(); ++i)
                    candidates.push_back({read_task(r, i), r.int64(i, 14), r.int64(i, 15)});
            }
            std::map<std::pair<std::string, int>, std::int64_t> deltas;
            std::vector<Task> moved;
            for (auto& [task, not_before, stalls] : candidates) {
                const detail::RescueMove move = detail::plan_rescue(task, not_before, stalls, p);
                // The rows are locked by this transaction: the guard always holds.
                c.run(sql::kRescueMove,
                      {task.id, param(static_cast<std::int64_t>(task.state)),
                       param(move.schedule_us), task.last_error, param(p.now_us), param(stalls)});
                if (move.lease_expired) {
                    c.run(sql::kLogError, {task.id, param(task.attempt_count), param(p.now_us),
                                           task.last_error, param(p.error_history_limit)});
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
            const PgResult r = c.run(sql::kGetTask, {id});
            if (r.rows() == 0) return std::nullopt;
            Task t = read_task(r, 0);
            const PgResult e = c.run(sql::kErrorsOf, {id});
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
            const PgResult r = [&] {
                if (!p.state) return c.run(sql::kListAnyState, args);
                const auto i = static_cast<std::size_t>(*p.state);
                if (i >= sql::kListInState.size()) throw StoreError("list: unknown state", false);
                return c.run(sql::kListInState[i], args);
            }();
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
                const auto i = static_cast<std::size_t>(state);
                if (i >= sql::kPurgeInState.size() || sql::kPurgeInState[i].name == nullptr) {
                    throw StoreError("purge: only finished states can be purged", false);
                }
                return c.run(sql::kPurgeInState[i], args).int64(0, 0);
            });
        });
    }

    StateCounts task_count(const TaskCountParams& p) override {
        return with_conn([&](PgConnection& c, int) {
            const PgResult r = c.run(sql::kCount, {p.queue});
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
            const PgResult counts = c.run(sql::kCountsByQueue, {});
            for (int i = 0; i < counts.rows(); ++i) {
                const std::string queue(counts.text(i, 0));
                if (out.empty() || out.back().queue != queue) out.push_back({queue, {}, {}});
                const auto state = static_cast<std::size_t>(counts.int64(i, 1));
                if (state < out.back().counts.size()) out.back().counts[state] = counts.int64(i, 2);
            }
            const PgResult due = c.run(sql::kOldestDueByQueue, {param(now_us)});
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
                const PgResult r = c.run(sql::kLockBucket, {p.buckets[i].name});
                if (r.rows() == 1) stored[i] = detail::BucketLevel{r.real(0, 0), r.int64(0, 1)};
                return r.rows() == 1;
            };
            for (const std::size_t i : order) {
                if (lock_row(i)) continue;
                // First use: so two first takers cannot both spend one fresh burst.
                c.run(sql::kCreateBucket,
                      {p.buckets[i].name, real_param(p.buckets[i].burst), param(p.now_us)});
                lock_row(i);
            }
            const detail::RatePlan plan = detail::plan_rate_take(p, stored);
            for (const std::size_t i : order) {
                if (plan.after.empty()) break;
                c.run(sql::kWriteBucket, {p.buckets[i].name, real_param(plan.after[i].tokens),
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
                if (c.run_once(sql::kSchemaTableExists, {}).text(0, 0) == "t") {
                    version = c.run_once(sql::kSchemaVersion, {}).int64(0, 0);
                }
            });
            const auto latest = static_cast<std::int64_t>(kMigrations.back().version);
            detail::check_schema_version(version, latest, out);
            if (version < latest) return;
            // PostgreSQL keeps its own pages consistent (WAL, checksums if enabled);
            // its indexes are verified when the amcheck extension is installed.
            guarded("the indexes (amcheck)", [&] {
                if (c.run_once(sql::kAmcheckInstalled, {}).int64(0, 0) == 0) return;
                c.run_once(sql::kCheckIndexes, {});
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
            rule("items_delivered past the last item", sql::kProgressPastLastItem);
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
    void notify(PgConnection& c) { c.run(sql::kNotify, {channel_}); }

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
                const PgResult r =
                    conn.run(sql::kCompleteGroup, {ids, attempts, param(now_us), param(shard)});
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
            c.run(sql::kAddCount, {key.first, param(static_cast<std::int64_t>(key.second)),
                                   param(shard), param(n)});
        }
    }

    [[noreturn]] static void explain_refusal(PgConnection& c, const TaskSetStateParams& p) {
        const PgResult r = c.run(sql::kStateOf, {p.id});
        std::optional<detail::CurrentTask> current;
        if (r.rows() > 0)
            current = detail::CurrentTask{static_cast<TaskState>(r.int64(0, 0)), r.int64(0, 1)};
        detail::throw_refusal(p, current);
    }

    // The first id of `tasks` that is already stored (for DuplicateTaskError).
    static std::string first_existing_id(PgConnection& c, const std::vector<Task>& tasks) {
        nlohmann::json ids = nlohmann::json::array();
        for (const Task& t : tasks) ids.push_back(t.id);
        const PgResult r = c.run(sql::kFirstExisting, {ids.dump()});
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
