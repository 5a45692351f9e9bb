// File: voxq/queue.hpp
//
// WorkerQueue: the durable TTS task queue of the user's guide, in C++.
//
//   voxq::WorkerQueue queue(voxq::QueueConfig::from_env());
//   queue.initialize();
//   std::vector<voxq::Task> tasks(1);
//   tasks[0].items.push_back({{"Hello, world!", "kokoro.af_heart"},
//                             "https://your-webhook.com/callback"});
//   queue.enqueue(tasks);                      // tasks[0].id is now a ULID
//   for (auto& task : queue.dequeue(5)) {
//       queue.mark_as_complete(task.id, task.attempt_count);
//   }
//   queue.close();
//
// Guarantees: an accepted task is never lost (each operation returns only once
// its write is durable, see QueueConfig::sqlite_synchronous); one attempt of a
// task is never handed to two callers; every state change is one atomic
// conditional write, so a call that throws has changed nothing.
//
// Thread-safety: every method may be called from any number of threads at once,
// and any number of processes may share the database. Concurrent writes from
// many threads share one transaction and one sync (group commit).
//
// Non-copyable, non-movable (workers hold references to it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "voxq/check.hpp"
#include "voxq/clock.hpp"
#include "voxq/config.hpp"
#include "voxq/errors.hpp"
#include "voxq/log.hpp"
#include "voxq/task.hpp"

namespace voxq {

class Store;  // voxq/store.hpp: for store implementers

// Filters for list_tasks().
struct TaskFilter {
    std::optional<TaskState> state;
    std::string queue;  // empty = every queue
};

// One queue at a glance, for metrics and dashboards (WorkerQueue::queue_overview).
struct QueueOverview {
    std::string queue;
    std::map<std::string, std::int64_t> stats;
    std::optional<double> oldest_due_age;
};

class WorkerQueue {
  public:
    // Throws ConfigError if `config` is invalid. Opens nothing yet.
    // `logger`: where the queue and everything running on it (stores, workers,
    // server) report; null = default_logger() (stderr, VOXQ_LOG_*).
    explicit WorkerQueue(QueueConfig config, std::shared_ptr<Clock> clock = SystemClock::instance(),
                         std::shared_ptr<Logger> logger = nullptr);
    // Uses `store` instead of opening config.database_url (for custom stores).
    WorkerQueue(QueueConfig config, std::unique_ptr<Store> store,
                std::shared_ptr<Clock> clock = SystemClock::instance(),
                std::shared_ptr<Logger> logger = nullptr);
    ~WorkerQueue();
    WorkerQueue(const WorkerQueue&) = delete;
    WorkerQueue& operator=(const WorkerQueue&) = delete;

    // Opens the store and creates or migrates the schema. Idempotent.
    // Every other operation before it, or after close(), throws QueueError.
    void initialize();

    // Validates every task (ValidationError names the index and field; nothing is
    // stored), fills empty ids with ULIDs and 0 timestamps with now, and stores
    // all of them atomically. A task whose dedup_key matches a stored task of the
    // same queue is not stored again; its id is set to the existing task's.
    // Returns the number of tasks newly stored.
    std::size_t enqueue(std::vector<Task>& tasks);
    // The checks enqueue makes on one task, without storing anything: throws
    // ValidationError naming `index` and the field. Needs no initialize().
    void validate_task(const Task& task, std::size_t index = 0) const;

    // Claims up to `size` (default batch_size) due PENDING tasks of `queue`
    // (empty = all queues): highest priority first, then earliest schedule_at,
    // then id. They come back PROCESSING with attempt_count incremented and a
    // fresh lease. Returns [] when nothing is due.
    std::vector<Task> dequeue(std::optional<std::int64_t> size = std::nullopt,
                              const std::string& queue = "");

    // PROCESSING -> COMPLETED.
    void mark_as_complete(const std::string& id, std::optional<std::int64_t> attempt = {});
    // PROCESSING -> RETRYABLE with `error` recorded. `not_before` (Unix seconds),
    // when given, is the earliest next attempt; the sweep schedules the task at
    // the later of it and the backoff.
    void mark_as_retry(const std::string& id, const std::string& error,
                       std::optional<std::int64_t> attempt = {},
                       std::optional<double> not_before = {});
    // PENDING -> CANCELLED.
    void mark_as_cancelled(const std::string& id, std::optional<std::int64_t> attempt = {});
    // PROCESSING -> DISCARDED, optionally recording why.
    void mark_as_discarded(const std::string& id, std::optional<std::int64_t> attempt = {},
                           const std::optional<std::string>& error = {});
    // DISCARDED -> PENDING, due now, attempt_count reset to 0 (history kept).
    void mark_as_resume(const std::string& id, std::optional<std::int64_t> attempt = {});
    // PROCESSING: pushes the lease forward (heartbeat_at = now).
    void heartbeat(const std::string& id, std::optional<std::int64_t> attempt = {});
    // PROCESSING: records that items [0, item_index] have been delivered (and
    // pushes the lease forward), so a later attempt starts after them.
    void mark_item_delivered(const std::string& id, std::int64_t item_index,
                             std::optional<std::int64_t> attempt = {});
    // PROCESSING -> PENDING, due now, attempt_count - 1: for a worker stopping
    // without finishing the task.
    void release(const std::string& id, std::optional<std::int64_t> attempt = {});

    // The retry sweep. Takes up to `size` tasks that are RETRYABLE, or PROCESSING
    // with an expired lease (recording "visibility timeout expired"). Those with
    // attempt_count >= max_attempts (the task's own, else `max_attempts`, else the
    // config's) become DISCARDED; the others PENDING, due after the backoff.
    // Returns the moved tasks in their new state.
    std::vector<Task> retry(std::optional<std::int64_t> size = std::nullopt,
                            std::optional<double> visibility_timeout = std::nullopt,
                            std::optional<std::int64_t> max_attempts = std::nullopt);

    // Shared rate limits (SPEC §6): takes one request of `characters` from the
    // budget `limit` named `name` (an engine's), shared by every process on this
    // database. Returns 0 when granted, else the seconds to wait before asking
    // again (nothing was taken). One write either way.
    double take_capacity(const std::string& name, const RateLimit& limit, std::int64_t characters);

    // {"pending", "processing", "completed", "retryable", "cancelled",
    //  "discarded", "total"}, zeros included. `queue` empty = all queues.
    std::map<std::string, std::int64_t> get_queue_stats(const std::string& queue = "");
    // Every queue that has tasks: its counts (as get_queue_stats) and how long
    // its oldest due PENDING task has waited (seconds; none when nothing is due).
    std::vector<QueueOverview> queue_overview();

    // The task with its error history; throws TaskNotFoundError.
    Task get_task(const std::string& id);
    // Newest first; pass the returned next_cursor to get the following page.
    TaskPage list_tasks(const TaskFilter& filter = {}, std::int64_t limit = 50,
                        const std::string& cursor = "");
    // Deletes tasks in `states` (terminal states only: COMPLETED, CANCELLED,
    // DISCARDED) last updated at least `older_than` seconds ago. Returns how many.
    std::int64_t purge(const std::vector<TaskState>& states, double older_than);

    // In-process wake-ups, so idle workers need not poll fast. work_epoch()
    // changes whenever this WorkerQueue makes tasks due now (enqueue, resume,
    // release, a retry sweep that moved tasks). A worker reads the epoch, calls
    // dequeue, and if that returned nothing waits with wait_for_work(epoch, t):
    // it returns true at once if work arrived since the epoch was read, else
    // waits up to `timeout_seconds` for it. Writes by other processes are not
    // seen: keep polling with a timeout.
    [[nodiscard]] std::uint64_t work_epoch() const;
    bool wait_for_work(std::uint64_t seen_epoch, double timeout_seconds);

    // True when the store can only be read (see Store::read_only): stats, lists
    // and tasks can be read; enqueue, dequeue and every mark_as_* throw StoreError.
    [[nodiscard]] bool read_only();
    // Empty while the store looks sound; otherwise why not (see Store::damage):
    // writes are then refused, and `voxq check` says more.
    [[nodiscard]] std::string store_damage();
    // The full check `voxq check` runs (see Store::check). Empty when healthy.
    [[nodiscard]] std::vector<StoreFinding> check_store();

    // Finishes pending writes, releases the store. Idempotent.
    void close();

    [[nodiscard]] const QueueConfig& config() const noexcept;
    [[nodiscard]] const Clock& clock() const noexcept;
    [[nodiscard]] Logger& logger() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace voxq
