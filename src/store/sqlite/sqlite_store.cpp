#include "store/sqlite/sqlite_store.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "store/sqlite/checkpointer.hpp"
#include "store/sqlite/connection.hpp"
#include "store/sqlite/count_deltas.hpp"
#include "store/sqlite/group_commit.hpp"
#include "store/sqlite/migrations.hpp"
#include "store/sqlite/reader_pool.hpp"
#include "store/sqlite/sqlite_queries.hpp"
#include "store/store_check.hpp"
#include "store/store_rules.hpp"
#include "store/task_row.hpp"
#include "voxq/errors.hpp"
#include "voxq/version.hpp"

namespace voxq::sqlite {

namespace {

constexpr std::size_t kMaxIdleReaders = 8;

// quick_check at open reads every page; past this it stops and trusts the file
// (a multi-gigabyte queue should not take seconds to start). `voxq check` runs
// the full integrity_check without a bound.
constexpr auto kOpenCheckBudget = std::chrono::milliseconds(300);

// SQLite-only rules: items must be a JSON array, progress within it.
constexpr detail::StateRule kSqliteRules[] = {
    {"items that are not a JSON array", sql::kItemsNotAnArray},
    {"items_delivered past the last item", sql::kProgressPastLastItem},
};

Task read_task(const Statement& s) {
    Task t;
    t.id = s.text(0);
    t.queue = s.text(1);
    t.state = static_cast<TaskState>(s.int64(2));
    t.priority = s.int64(3);
    t.schedule_at = detail::us_to_seconds(s.int64(4));
    t.items = detail::items_from_row(s.text_view(5));
    t.attempt_count = s.int64(6);
    t.max_attempts = s.int64(7);
    t.last_error = s.text(8);
    t.dedup_key = s.is_null(9) ? std::string() : s.text(9);
    t.created_at = detail::us_to_seconds(s.int64(10));
    t.updated_at = detail::us_to_seconds(s.int64(11));
    t.heartbeat_at = detail::us_to_seconds(s.int64(12));
    t.items_delivered = s.int64(13);
    return t;
}

// Appends one error to the task's history and trims it to `limit` entries.
void record_error(Connection& conn, const std::string& id, std::int64_t attempt, std::int64_t at,
                  const std::string& message, std::int64_t limit) {
    conn.prepare(sql::kAppendError).bind(1, id).bind(2, attempt).bind(3, at).bind(4, message).run();
    conn.prepare(sql::kTrimErrors).bind(1, id).bind(2, limit).run();
}

class SqliteStore final : public Store {
  public:
    SqliteStore(std::string path, const QueueConfig& config)
        : path_(std::move(path)),
          in_memory_(path_ == ":memory:"),
          busy_timeout_ms_(static_cast<int>(config.sqlite_busy_timeout_ms)),
          synchronous_full_(config.sqlite_synchronous == SqliteSynchronous::Full) {
        if (!in_memory_) {
            const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
            std::error_code ec;
            if (!parent.empty()) std::filesystem::create_directories(parent, ec);
            if (ec) {
                throw StoreError("create folder " + parent.string() + ": " + ec.message(), false);
            }
        }
        std::unique_ptr<Connection> writer;
        try {
            writer = std::make_unique<Connection>(path_, busy_timeout_ms_, synchronous_full_);
        } catch (const ReadOnlyDatabase&) {
            // Still readable: serve stats, list and show; refuse every write.
            read_only_ = true;
            writer = open_connection();
        }
        if (!in_memory_) damage_ = quick_check(*writer);
        damaged_ = !damage_.empty();
        if (!in_memory_ && !read_only_) {
            try {
                checkpointer_ = std::make_unique<Checkpointer>(open_connection(), *writer);
            } catch (const StoreError&) {
                // No second connection: SQLite's auto-checkpoint stays in place.
            }
        }
        writes_ = std::make_unique<GroupCommit>(std::move(writer));
    }

    ~SqliteStore() override { close(); }
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    void migrate() override {
        if (read_only_ || !damage().empty()) {
            const std::int64_t version = schema_version();
            const auto latest = static_cast<std::int64_t>(kMigrations.back().version);
            if (version < latest) {
                throw StoreError(path_ + " is read-only, and its schema (version " +
                                     std::to_string(version) + ") needs migrating to version " +
                                     std::to_string(latest),
                                 false);
            }
            return;
        }
        write([](Connection& c, CountDeltas&) {
            c.exec(sql::kCreateSchemaTable);
            std::int64_t current = 0;
            {
                Statement& s = c.prepare(sql::kSchemaVersion);
                if (s.step()) current = s.int64(0);
            }
            for (const Migration& m : kMigrations) {
                if (m.version <= current) continue;
                c.exec(m.sql);
                c.prepare(sql::kRecordMigration)
                    .bind(1, static_cast<std::int64_t>(m.version))
                    .run();
            }
        });
    }

    [[nodiscard]] bool read_only() const override { return read_only_; }

    [[nodiscard]] std::string damage() const override {
        std::lock_guard lock(damage_mutex_);
        return damage_;
    }

    std::vector<StoreFinding> check() override {
        // The one connection that holds an in-memory database.
        if (in_memory_) return read([&](Connection& c) { return check_on(c); });
        // A connection of its own: the check must see the file as it is now.
        std::unique_ptr<Connection> conn;
        try {
            conn = open_connection();
        } catch (const StoreError& e) {
            return {{"integrity", e.what()}};
        }
        std::optional<Transaction> snapshot;  // counters and rows as of one moment
        try {
            snapshot.emplace(*conn, Transaction::Kind::Deferred);
        } catch (const StoreError& e) {
            return {{"integrity", e.what()}};
        }
        return check_on(*conn);
    }

    std::vector<StoreFinding> check_on(Connection& c) const {
        std::vector<StoreFinding> out;
        try {
            Statement& s = c.prepare(sql::kIntegrityCheck);
            while (s.step()) {
                // One finding per line; SQLite may put several in one row.
                std::string_view rest = s.text_view(0);
                while (!rest.empty()) {
                    const std::size_t end = std::min(rest.find('\n'), rest.size());
                    const std::string_view line = rest.substr(0, end);
                    rest.remove_prefix(std::min(end + 1, rest.size()));
                    if (line.empty() || line == "ok" || line.starts_with("*** in database")) {
                        continue;
                    }
                    out.push_back({"integrity", path_ + ": " + std::string(line)});
                }
            }
        } catch (const StoreError& e) {
            out.push_back({"integrity", e.what()});
        }
        // The rest reads tables an integrity failure may have damaged: each
        // query on its own, so one unreadable table does not hide the others.
        auto guarded = [&](const char* what, const std::function<void()>& fn) {
            try {
                fn();
            } catch (const StoreError& e) {
                out.push_back({"integrity", std::string("cannot read ") + what + ": " + e.what()});
            }
        };
        std::int64_t version = 0;
        guarded("the schema version", [&] {
            Statement& exists = c.prepare(sql::kSchemaTableExists);
            if (!exists.step()) return;
            Statement& v = c.prepare(sql::kSchemaVersion);
            if (v.step()) version = v.int64(0);
        });
        detail::check_schema_version(version, static_cast<std::int64_t>(kMigrations.back().version),
                                     out);
        if (version < static_cast<std::int64_t>(kMigrations.back().version)) return out;
        guarded("the counters", [&] {
            detail::CountsByQueueState rows;
            detail::CountsByQueueState counters;
            Statement& counted = c.prepare(detail::kRowCountsSql);
            while (counted.step()) rows[{counted.text(0), counted.int64(1)}] = counted.int64(2);
            Statement& sums = c.prepare(detail::kCounterSumsSql);
            while (sums.step()) {
                if (sums.int64(2) != 0) counters[{sums.text(0), sums.int64(1)}] = sums.int64(2);
            }
            detail::compare_counters(rows, counters, out);
        });
        guarded("the task rows", [&] {
            std::vector<detail::StateRule> rules(std::begin(detail::kStateRules),
                                                 std::end(detail::kStateRules));
            rules.insert(rules.end(), std::begin(kSqliteRules), std::end(kSqliteRules));
            for (const detail::StateRule& r : rules) {
                Statement& s = c.prepare(r.sql);
                if (s.step()) {
                    detail::add_rule_finding(out, r.broken, s.int64(0),
                                             s.is_null(1) ? "" : s.text(1));
                }
            }
        });
        guarded("the error history", [&] {
            Statement& s = c.prepare(detail::kOrphanErrorsSql);
            if (s.step() && s.int64(0) > 0) {
                out.push_back({"state", std::to_string(s.int64(0)) +
                                            " error history row(s) of a task that is gone, e.g. " +
                                            s.text(1)});
            }
        });
        return out;
    }

    std::int64_t schema_version() override {
        return read([](Connection& c) -> std::int64_t {
            Statement& exists = c.prepare(sql::kSchemaTableExists);
            if (!exists.step()) return 0;
            Statement& s = c.prepare(sql::kSchemaVersion);
            return s.step() ? s.int64(0) : 0;
        });
    }

    TaskInsertResult task_insert(const TaskInsertParams& params) override {
        TaskInsertResult result;
        write([&](Connection& c, CountDeltas& counts) {
            result = {};
            for (std::size_t i = 0; i < params.tasks->size(); ++i) {
                const Task& t = (*params.tasks)[i];
                if (!t.dedup_key.empty()) {
                    Statement& q = c.prepare(sql::kFindByDedupKey);
                    q.bind(1, t.queue).bind(2, t.dedup_key);
                    if (q.step()) {
                        result.deduplicated.emplace_back(i, q.text(0));
                        continue;
                    }
                }
                Statement& ins = c.prepare(sql::kInsertTask);
                ins.bind(1, t.id)
                    .bind(2, t.queue)
                    .bind(3, static_cast<std::int64_t>(t.state))
                    .bind(4, t.priority)
                    .bind(5, detail::seconds_to_us(t.schedule_at))
                    .bind(6, detail::items_to_row(t.items))
                    .bind(7, t.max_attempts)
                    .bind(9, detail::seconds_to_us(t.created_at))
                    .bind(10, detail::seconds_to_us(t.updated_at));
                if (t.dedup_key.empty()) {
                    ins.bind_null(8);
                } else {
                    ins.bind(8, t.dedup_key);
                }
                try {
                    ins.run();
                } catch (const StoreError&) {
                    if (sqlite3_extended_errcode(c.handle()) == SQLITE_CONSTRAINT_PRIMARYKEY) {
                        throw DuplicateTaskError(t.id);
                    }
                    throw;
                }
                counts.add(t.queue, t.state, 1);
                ++result.inserted;
            }
        });
        return result;
    }

    std::vector<Task> task_claim(const TaskClaimParams& p) override {
        std::vector<Task> claimed;
        write([&](Connection& c, CountDeltas& counts) {
            claimed.clear();
            std::vector<std::string> queues;
            if (!p.queue.empty()) {
                queues.push_back(p.queue);
            } else {
                queues = queues_with_pending(c, counts);
            }
            if (queues.size() == 1) {
                claim_from_one_queue(c, queues.front(), p, claimed);
            } else if (queues.size() > 1) {
                claim_across_queues(c, queues, p, claimed);
            }
            for (const Task& t : claimed) {
                counts.move(t.queue, TaskState::PENDING, TaskState::PROCESSING);
            }
        });
        // RETURNING gives no order; hand tasks out in claim order.
        detail::sort_in_claim_order(claimed);
        return claimed;
    }

    TaskStateChange task_set_state(const TaskSetStateParams& p) override {
        TaskStateChange result;
        write([&](Connection& c, CountDeltas& counts) {
            Statement& s = c.prepare(sql::kSetState);
            s.bind(1, p.id)
                .bind(2, static_cast<std::int64_t>(p.to))
                .bind(3, p.now_us)
                .bind(4, static_cast<std::int64_t>(p.reset_attempts))
                .bind(5, p.attempt_delta)
                .bind(6, static_cast<std::int64_t>(p.schedule_now))
                .bind(7, static_cast<std::int64_t>(p.touch_heartbeat))
                .bind_optional(9, p.not_before_us)
                .bind(10, static_cast<std::int64_t>(p.from))
                .bind_optional(11, p.attempt)
                .bind_optional(12, p.items_delivered);
            if (p.error) {
                s.bind(8, *p.error);
            } else {
                s.bind_null(8);
            }
            if (!s.step()) explain_refusal(c, p);
            result = TaskStateChange{s.text(0), s.int64(1)};
            counts.move(result.queue, p.from, p.to);
            if (p.error) {
                record_error(c, p.id, result.attempt_count, p.now_us, *p.error,
                             p.error_history_limit);
            }
        });
        return result;
    }

    std::vector<Task> task_rescue(const TaskRescueParams& p) override {
        std::vector<Task> moved;
        write([&](Connection& c, CountDeltas& counts) {
            moved.clear();
            struct Candidate {
                Task task;
                std::int64_t not_before;
                std::int64_t stalls;
            };
            std::vector<Candidate> candidates;
            {
                Statement& s = c.prepare(sql::kRetryableOldestFirst);
                s.bind(1, p.limit);
                while (s.step()) candidates.push_back({read_task(s), s.int64(14), s.int64(15)});
            }
            const auto remaining = p.limit - static_cast<std::int64_t>(candidates.size());
            if (remaining > 0) {
                Statement& s = c.prepare(sql::kExpiredLeases);
                s.bind(1, p.now_us - p.visibility_timeout_us).bind(2, remaining);
                while (s.step()) candidates.push_back({read_task(s), s.int64(14), s.int64(15)});
            }
            for (auto& [task, not_before, stalls] : candidates) {
                const detail::RescueMove move = detail::plan_rescue(task, not_before, stalls, p);
                c.prepare(sql::kRescueMove)
                    .bind(1, task.id)
                    .bind(2, static_cast<std::int64_t>(task.state))
                    .bind(3, move.schedule_us)
                    .bind(4, task.last_error)
                    .bind(5, p.now_us)
                    .bind(6, static_cast<std::int64_t>(move.from))
                    .bind(7, task.attempt_count)
                    .bind(8, stalls)
                    .run();
                if (c.changes() != 1) {
                    throw StoreError("retry sweep: task " + task.id + " changed under the sweep",
                                     true);
                }
                if (move.lease_expired) {
                    record_error(c, task.id, task.attempt_count, p.now_us, task.last_error,
                                 p.error_history_limit);
                }
                counts.move(task.queue, move.from, task.state);
                moved.push_back(std::move(task));
            }
        });
        return moved;
    }

    std::optional<Task> task_get(const std::string& id) override {
        return read([&](Connection& c) -> std::optional<Task> {
            Statement& s = c.prepare(sql::kGetTask);
            s.bind(1, id);
            if (!s.step()) return std::nullopt;
            Task t = read_task(s);
            Statement& e = c.prepare(sql::kErrorsOf);
            e.bind(1, id);
            while (e.step()) {
                t.error_history.push_back(
                    TaskError{e.int64(0), detail::us_to_seconds(e.int64(1)), e.text(2)});
            }
            return t;
        });
    }

    TaskPage task_list(const TaskListParams& p) override {
        return read([&](Connection& c) {
            Statement& s = list_statement(c, p.state);
            s.bind(2, detail::list_start(p.cursor)).bind(3, p.queue).bind(4, p.limit + 1);
            std::vector<Task> fetched;
            while (s.step()) fetched.push_back(read_task(s));
            return detail::make_page(std::move(fetched), p.limit);
        });
    }

    std::int64_t task_purge(const TaskPurgeParams& p) override {
        // One bounded transaction per chunk, so a large purge never holds the write
        // lock for long.
        return detail::purge_in_chunks(p, [&](TaskState state) {
            std::int64_t deleted = 0;
            write([&](Connection& c, CountDeltas& counts) {
                Statement& s = purge_statement(c, state);
                s.bind(1, p.updated_before_us).bind(2, p.chunk);
                std::vector<std::string> ids;
                while (s.step()) {
                    ids.push_back(s.text(0));
                    counts.add(s.text(1), state, -1);
                }
                for (const std::string& id : ids) {
                    c.prepare(sql::kDeleteErrorsOf).bind(1, id).run();
                }
                deleted = static_cast<std::int64_t>(ids.size());
            });
            return deleted;
        });
    }

    StateCounts task_count(const TaskCountParams& p) override {
        return read([&](Connection& c) {
            StateCounts counts{};
            Statement& s = c.prepare(p.queue.empty() ? sql::kCountAll : sql::kCountQueue);
            if (!p.queue.empty()) s.bind(1, p.queue);
            while (s.step()) {
                const auto state = static_cast<std::size_t>(s.int64(0));
                if (state < counts.size()) counts[state] = s.int64(1);
            }
            return counts;
        });
    }

    std::vector<QueueOverviewRow> task_overview(std::int64_t now_us) override {
        return read([&](Connection& c) {
            std::vector<QueueOverviewRow> out;
            Statement& s = c.prepare(sql::kCountsByQueue);
            while (s.step()) {
                const std::string queue = s.text(0);
                if (out.empty() || out.back().queue != queue) out.push_back({queue, {}, {}});
                const auto state = static_cast<std::size_t>(s.int64(1));
                if (state < out.back().counts.size()) out.back().counts[state] = s.int64(2);
            }
            for (QueueOverviewRow& q : out) {
                if (q.counts[static_cast<std::size_t>(TaskState::PENDING)] == 0) continue;
                Statement& due = c.prepare(sql::kOldestDue);
                due.bind(1, q.queue).bind(2, now_us);
                if (due.step() && !due.is_null(0)) q.oldest_due_us = due.int64(0);
            }
            return out;
        });
    }

    std::int64_t rate_take(const RateTakeParams& p) override {
        std::int64_t wait_us = 0;
        write([&](Connection& c, CountDeltas&) {
            std::vector<std::optional<detail::BucketLevel>> stored;
            for (const RateBucket& b : p.buckets) {
                Statement& s = c.prepare(sql::kReadBucket);
                s.bind(1, b.name);
                stored.push_back(s.step()
                                     ? std::optional<detail::BucketLevel>({s.real(0), s.int64(1)})
                                     : std::nullopt);
                s.reset();
            }
            const detail::RatePlan plan = detail::plan_rate_take(p, stored);
            wait_us = plan.wait_us;
            for (std::size_t i = 0; i < plan.after.size(); ++i) {
                c.prepare(sql::kWriteBucket)
                    .bind(1, p.buckets[i].name)
                    .bind(2, plan.after[i].tokens)
                    .bind(3, plan.after[i].updated_us)
                    .run();
            }
        });
        return wait_us;
    }

    void close() override {
        readers_.close();       // no new reads from here on
        writes_->close();       // lets the writes already queued finish
        checkpointer_.reset();  // the writer, whose commits wake it, is closed
    }

  private:
    // Queues that may hold PENDING tasks: those task_counts says have some, and
    // those that gained some earlier in this transaction.
    static std::vector<std::string> queues_with_pending(Connection& c, const CountDeltas& counts) {
        std::set<std::string> queues;
        Statement& s = c.prepare(sql::kQueuesWithPending);
        while (s.step()) queues.insert(s.text(0));
        counts.add_queues_gaining(TaskState::PENDING, queues);
        return {queues.begin(), queues.end()};
    }

    // One statement: the due tasks of `queue` in claim order, straight off the
    // partial index, moved to PROCESSING.
    static void claim_from_one_queue(Connection& c, const std::string& queue,
                                     const TaskClaimParams& p, std::vector<Task>& claimed) {
        Statement& s = c.prepare(sql::kClaimFromQueue);
        s.bind(1, p.now_us).bind(2, p.limit).bind(3, queue);
        while (s.step()) claimed.push_back(read_task(s));
    }

    // Several queues: the first `limit` due tasks of each, merged in claim order;
    // the best `limit` of those are claimed one by one. (One index per queue
    // order serves both this and per-queue claims; a second, queue-less index
    // would cost every enqueue and every claim a further index write.)
    static void claim_across_queues(Connection& c, const std::vector<std::string>& queues,
                                    const TaskClaimParams& p, std::vector<Task>& claimed) {
        struct Candidate {
            std::int64_t priority;
            std::int64_t schedule_at;
            std::string id;
        };
        std::vector<Candidate> candidates;
        for (const std::string& queue : queues) {
            Statement& s = c.prepare(sql::kDueInQueue);
            s.bind(1, queue).bind(2, p.now_us).bind(3, p.limit);
            while (s.step()) candidates.push_back({s.int64(0), s.int64(1), s.text(2)});
        }
        const auto take = std::min(candidates.size(), static_cast<std::size_t>(p.limit));
        std::partial_sort(candidates.begin(), candidates.begin() + static_cast<long>(take),
                          candidates.end(), [](const Candidate& a, const Candidate& b) {
                              if (a.priority != b.priority) return a.priority > b.priority;
                              if (a.schedule_at != b.schedule_at) {
                                  return a.schedule_at < b.schedule_at;
                              }
                              return a.id < b.id;
                          });
        for (std::size_t i = 0; i < take; ++i) {
            Statement& s = c.prepare(sql::kClaimOne);
            s.bind(1, p.now_us).bind(2, candidates[i].id);
            if (s.step()) claimed.push_back(read_task(s));
        }
    }

    // The listing query for one state (see sql::kListInState).
    static Statement& list_statement(Connection& c, std::optional<TaskState> state) {
        if (!state) return c.prepare(sql::kListAnyState);
        const auto i = static_cast<std::size_t>(*state);
        if (i >= sql::kListInState.size()) throw StoreError("list: unknown state", false);
        return c.prepare(sql::kListInState[i]);
    }

    // Deletes up to ?2 tasks of `state` updated at or before ?1 (see sql::kPurgeInState).
    static Statement& purge_statement(Connection& c, TaskState state) {
        const auto i = static_cast<std::size_t>(state);
        if (i >= sql::kPurgeInState.size() || sql::kPurgeInState[i] == nullptr) {
            throw StoreError("purge: only finished states can be purged", false);
        }
        return c.prepare(sql::kPurgeInState[i]);
    }

    // Throws the error that explains why a guarded transition matched no row.
    [[noreturn]] static void explain_refusal(Connection& c, const TaskSetStateParams& p) {
        Statement& s = c.prepare(sql::kStateOf);
        s.bind(1, p.id);
        std::optional<detail::CurrentTask> current;
        if (s.step()) current = detail::CurrentTask{static_cast<TaskState>(s.int64(0)), s.int64(1)};
        detail::throw_refusal(p, current);
    }

    // Every write goes through the group commit; none to a read-only or
    // damaged database.
    void write(GroupCommit::WriteFn fn) {
        if (read_only_) {
            throw StoreError(path_ +
                                 " is read-only (the database, its folder or its filesystem "
                                 "cannot be written): only reads are possible",
                             false);
        }
        // Every write passes here: a flag, not the mutex, until damage is found.
        if (damaged_.load(std::memory_order_acquire)) {
            const std::string why = damage();
            throw StoreError(path_ + " is damaged, so voxq refuses to write to it (" + why +
                                 "); run `voxq check`, then restore it from a backup",
                             false);
        }
        try {
            writes_->write(std::move(fn));
        } catch (const DatabaseDamaged& e) {
            note_damage(e.what());
            throw;
        }
    }

    void note_damage(const std::string& why) {
        std::lock_guard lock(damage_mutex_);
        if (damage_.empty()) damage_ = why;
        damaged_.store(true, std::memory_order_release);
    }

    // PRAGMA quick_check, stopped after kOpenCheckBudget. Returns what it found
    // ("" when the file looks sound or the check ran out of time).
    std::string quick_check(Connection& c) const {
        const auto deadline = std::chrono::steady_clock::now() + kOpenCheckBudget;
        auto stop_when_late = [](void* arg) -> int {
            const auto* until = static_cast<const std::chrono::steady_clock::time_point*>(arg);
            return std::chrono::steady_clock::now() > *until ? 1 : 0;
        };
        sqlite3_progress_handler(c.handle(), 10000, stop_when_late,
                                 const_cast<std::chrono::steady_clock::time_point*>(&deadline));
        std::string found;
        try {
            Statement& s = c.prepare(sql::kQuickCheck);
            if (s.step() && s.text(0) != "ok") found = "quick_check: " + s.text(0);
            s.reset();
        } catch (const DatabaseDamaged& e) {
            found = e.what();
        } catch (const StoreError& e) {
            // Interrupted (out of time) or busy: no verdict, trust the file.
            if ((sqlite3_errcode(c.handle()) & 0xFF) != SQLITE_INTERRUPT) {
                sqlite3_progress_handler(c.handle(), 0, nullptr, nullptr);
                throw;
            }
        }
        sqlite3_progress_handler(c.handle(), 0, nullptr, nullptr);
        return found;
    }

    [[nodiscard]] std::unique_ptr<Connection> open_connection() const {
        return std::make_unique<Connection>(
            path_, busy_timeout_ms_, synchronous_full_,
            read_only_ ? Connection::Access::ReadOnly : Connection::Access::ReadWrite);
    }

    template <typename F>
    auto read(F&& fn) -> decltype(fn(std::declval<Connection&>())) {
        using Result = decltype(fn(std::declval<Connection&>()));
        if (in_memory_) {
            // One connection holds the whole in-memory database.
            std::optional<Result> out;
            write([&](Connection& c, CountDeltas&) { out.emplace(fn(c)); });
            return std::move(*out);
        }
        const ReaderPool::Lease conn = readers_.borrow();
        try {
            Transaction txn(*conn, Transaction::Kind::Deferred);  // one snapshot for the read
            Result out = fn(*conn);
            conn->reset_statements();
            txn.commit();
            return out;
        } catch (const DatabaseDamaged& e) {
            note_damage(e.what());
            throw;
        }
    }

    const std::string path_;
    const bool in_memory_;
    const int busy_timeout_ms_;
    const bool synchronous_full_;
    bool read_only_ = false;  // set once, in the constructor
    mutable std::mutex damage_mutex_;
    std::string damage_;                 // guarded by damage_mutex_; never cleared once set
    std::atomic<bool> damaged_ = false;  // set after damage_, once

    std::unique_ptr<Checkpointer> checkpointer_;  // before writes_: outlives the writer
    std::unique_ptr<GroupCommit> writes_;
    ReaderPool readers_{[this] { return open_connection(); }, kMaxIdleReaders};
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path, const QueueConfig& config) {
    return std::make_unique<SqliteStore>(path, config);
}

}  // namespace voxq::sqlite

namespace voxq {
const char* sqlite_version() noexcept {
    return sqlite3_libversion();
}
}  // namespace voxq
