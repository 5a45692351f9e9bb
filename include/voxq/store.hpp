// File: voxq/store.hpp
//
// The store interface: one implementation per database (SQLite, PostgreSQL), all
// passing the same conformance suite (tests/store/conformance_test.cpp).
// WorkerQueue validates input, fills ids and timestamps, and turns each public
// operation into exactly one call here; the store makes each call one atomic
// conditional write.
//
// Methods are named noun first and take one params struct each. Times are
// microseconds since the Unix epoch, supplied by the caller (the queue's clock):
// a store never reads the system clock.
//
// Thread-safety: every method may be called from many threads at once, and many
// processes may open the same database.
//
// STABILITY: for store implementers and tests, not for applications (they use
// WorkerQueue, voxq/queue.hpp). This interface may change in any minor version,
// as River's driver interface does; a store outside this tree must follow it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "voxq/check.hpp"
#include "voxq/config.hpp"
#include "voxq/log.hpp"
#include "voxq/task.hpp"

namespace voxq {

// Counts per state, indexed by static_cast<size_t>(TaskState).
using StateCounts = std::array<std::int64_t, std::size(kAllTaskStates)>;

struct TaskInsertParams {
    // Validated tasks with ids, states and timestamps filled in. REQUIRES: non-null.
    const std::vector<Task>* tasks = nullptr;
};

struct TaskInsertResult {
    std::size_t inserted = 0;  // tasks newly stored
    // Tasks not stored because their dedup_key matched a stored task of their
    // queue: (index in params.tasks, the existing task's id).
    std::vector<std::pair<std::size_t, std::string>> deduplicated;
};

struct TaskClaimParams {
    std::string queue;  // empty = every queue
    std::int64_t limit = 1;
    std::int64_t now_us = 0;
};

// One guarded transition: moves task `id` from `from` to `to` iff it is in
// `from` (and, when `attempt` is set, at that attempt). Otherwise throws
// TaskNotFoundError or InvalidStateTransitionError and changes nothing.
struct TaskSetStateParams {
    std::string id;
    std::string operation;  // the caller's verb, for error messages: "complete", ...
    TaskState from = TaskState::PROCESSING;
    TaskState to = TaskState::COMPLETED;
    std::optional<std::int64_t> attempt;  // fencing token
    std::int64_t now_us = 0;
    std::optional<std::string> error;           // set last_error and append to history
    std::optional<std::int64_t> not_before_us;  // earliest next attempt (Retry-After)
    std::int64_t attempt_delta = 0;             // added to attempt_count (release: -1)
    bool reset_attempts = false;                // attempt_count = 0 (resume)
    bool schedule_now = false;                  // schedule_at = now_us
    bool touch_heartbeat = false;               // heartbeat_at = now_us
    // items_delivered = max(items_delivered, this) (progress never goes back)
    std::optional<std::int64_t> items_delivered;
    std::int64_t error_history_limit = 10;
};

// What task_set_state changed.
struct TaskStateChange {
    std::string queue;
    std::int64_t attempt_count = 0;
};

// The retry sweep (see WorkerQueue::retry).
struct TaskRescueParams {
    std::int64_t limit = 100;
    std::int64_t now_us = 0;
    std::int64_t visibility_timeout_us = 0;
    std::int64_t max_attempts = 3;  // for tasks whose own max_attempts is 0
    RetryPolicy policy;
    std::int64_t error_history_limit = 10;
    std::int64_t max_stalls = 3;  // expired leases after which a task is discarded as poison
};

struct TaskListParams {
    std::optional<TaskState> state;
    std::string queue;  // empty = every queue
    std::int64_t limit = 50;
    std::string cursor;  // empty = from the newest; else next_cursor of the previous page
};

struct TaskPurgeParams {
    std::vector<TaskState> states;
    std::int64_t updated_before_us = 0;  // delete tasks last updated at or before this
    std::int64_t chunk = 1000;           // rows per transaction
};

struct TaskCountParams {
    std::string queue;  // empty = every queue
};

// One queue at a glance as a store reads it (counts by state, times in
// microseconds); WorkerQueue::queue_overview() turns each into a QueueOverview.
struct QueueOverviewRow {
    std::string queue;
    StateCounts counts{};
    std::optional<std::int64_t> oldest_due_us;  // schedule_at of the oldest due PENDING task
};

// One token bucket of a shared rate limit: it holds at most `burst` tokens and
// gains `rate` a second; a grant takes `cost`.
struct RateBucket {
    std::string name;  // "<engine>/requests", "<engine>/characters"
    double rate = 1;
    double burst = 1;
    double cost = 1;
};

// Takes from every bucket at once or from none (all or nothing).
struct RateTakeParams {
    std::vector<RateBucket> buckets;  // distinct names
    std::int64_t now_us = 0;
};

class Store {
  public:
    virtual ~Store() = default;

    // Creates or upgrades the schema; safe when several processes do it at once.
    virtual void migrate() = 0;
    // Schema version now in the database.
    [[nodiscard]] virtual std::int64_t schema_version() = 0;

    // Stores every task or none. Throws DuplicateTaskError when an id exists.
    virtual TaskInsertResult task_insert(const TaskInsertParams& params) = 0;
    // Claims due PENDING tasks: highest priority, then earliest schedule_at, then
    // id. Returns them PROCESSING with attempt_count incremented.
    virtual std::vector<Task> task_claim(const TaskClaimParams& params) = 0;
    // Returns the task's queue and attempt_count after the transition.
    virtual TaskStateChange task_set_state(const TaskSetStateParams& params) = 0;
    virtual std::vector<Task> task_rescue(const TaskRescueParams& params) = 0;
    [[nodiscard]] virtual std::optional<Task> task_get(const std::string& id) = 0;
    [[nodiscard]] virtual TaskPage task_list(const TaskListParams& params) = 0;
    virtual std::int64_t task_purge(const TaskPurgeParams& params) = 0;
    [[nodiscard]] virtual StateCounts task_count(const TaskCountParams& params) = 0;
    // Every queue that has tasks, by name, with its counts and the schedule_at of
    // its oldest task that is PENDING and due at `now_us`.
    [[nodiscard]] virtual std::vector<QueueOverviewRow> task_overview(std::int64_t now_us) = 0;

    // Shared rate limits (SPEC §6): one conditional write. Returns 0 when every
    // bucket paid its cost, else the microseconds until they all could (and
    // takes nothing). A bucket never seen is full. The arithmetic is
    // detail::plan_rate_take (src/store/store_rules.hpp), shared by every store.
    virtual std::int64_t rate_take(const RateTakeParams& params) = 0;

    // Push wake-ups from other processes (a capability; the default has none).
    // After this call the store invokes `on_work`, from a thread of its own, when
    // any process makes tasks due (enqueue, release, resume, a sweep). Workers
    // still poll, less often: a store may miss a wake-up (e.g. while reconnecting,
    // or behind a pooler that drops LISTEN).
    // NOLINTNEXTLINE(performance-unnecessary-value-param): overrides keep the callback
    virtual void subscribe_to_work(std::function<void()> on_work) { (void)on_work; }

    // True when the database can only be read (SQLite on a read-only file or
    // filesystem): reads work, every write throws StoreError naming the file.
    [[nodiscard]] virtual bool read_only() const { return false; }

    // A full consistency check, for `voxq check`: the schema version against
    // this build's, the database's own integrity check, the per-state counters
    // against the rows, and rows that break the state rules (PROCESSING without
    // a lease, progress past the last item, ...). Empty when healthy. Reads only;
    // works on a damaged or unmigrated database (that is what it is for).
    [[nodiscard]] virtual std::vector<StoreFinding> check() = 0;

    // Empty while the database looks sound. Otherwise why it does not (a store
    // that found damage at open or on the way, e.g. SQLite's quick_check or
    // SQLITE_CORRUPT): from then on every write throws StoreError naming the
    // file, reads are still tried, and /healthz reports it.
    [[nodiscard]] virtual std::string damage() const { return {}; }

    // Finishes pending writes and releases the database. Idempotent.
    virtual void close() = 0;
};

// Opens the store that `config.database_url` names. Does not migrate. `logger`
// hears of lost connections and reconnects (null = default_logger()).
[[nodiscard]] std::unique_ptr<Store> open_store(const QueueConfig& config,
                                                std::shared_ptr<Logger> logger = nullptr);

}  // namespace voxq
