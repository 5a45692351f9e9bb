#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>

#include "core/ulid.hpp"
#include "core/validation.hpp"
#include "util/time.hpp"
#include "voxq/queue.hpp"
#include "voxq/store.hpp"

namespace voxq {

struct WorkerQueue::Impl {
    QueueConfig config;
    std::shared_ptr<Clock> clock;
    std::shared_ptr<Logger> logger;
    std::unique_ptr<Store> store;  // set by initialize() unless given
    bool owns_store_choice = true;

    // Guards the open/closed life cycle: operations hold it shared, initialize()
    // and close() exclusively, so close() waits for calls in flight.
    std::shared_mutex life;
    bool open = false;  // guarded by life
    detail::UlidGenerator ulids;

    mutable std::mutex wake_mutex;
    std::condition_variable wake;
    std::uint64_t epoch = 0;  // guarded by wake_mutex

    void signal_work() {
        {
            std::lock_guard lock(wake_mutex);
            ++epoch;
        }
        wake.notify_all();
    }

    // Runs `fn(store)` if the queue is open, else throws QueueError.
    template <typename F>
    auto with_store(F&& fn) {
        std::shared_lock lock(life);
        if (!open) throw QueueError("the queue is not open: call initialize() first");
        return fn(*store);
    }

    std::int64_t now() const { return clock->now_us(); }

    TaskStateChange transition(const std::string& id, const char* operation, TaskState from,
                               TaskState to, std::optional<std::int64_t> attempt,
                               TaskSetStateParams params = {}) {
        params.id = id;
        params.operation = operation;
        params.from = from;
        params.to = to;
        params.attempt = attempt;
        params.now_us = now();
        params.error_history_limit = config.error_history_limit;
        return with_store([&](Store& s) { return s.task_set_state(params); });
    }
};

WorkerQueue::WorkerQueue(QueueConfig config, std::shared_ptr<Clock> clock,
                         std::shared_ptr<Logger> logger)
    : impl_(std::make_unique<Impl>()) {
    config.validate();
    impl_->config = std::move(config);
    impl_->clock = clock ? std::move(clock) : SystemClock::instance();
    impl_->logger = logger ? std::move(logger) : default_logger();
}

WorkerQueue::WorkerQueue(QueueConfig config, std::unique_ptr<Store> store,
                         std::shared_ptr<Clock> clock, std::shared_ptr<Logger> logger)
    : WorkerQueue(std::move(config), std::move(clock), std::move(logger)) {
    impl_->store = std::move(store);
    impl_->owns_store_choice = false;
}

WorkerQueue::~WorkerQueue() {
    try {
        close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): never throw from a destructor
    }
}

void WorkerQueue::initialize() {
    std::unique_lock lock(impl_->life);
    if (impl_->open) return;
    if (!impl_->store) impl_->store = open_store(impl_->config, impl_->logger);
    impl_->store->migrate();
    // Work made due by other processes wakes this one's idle workers too.
    impl_->store->subscribe_to_work([impl = impl_.get()] { impl->signal_work(); });
    impl_->open = true;
}

std::size_t WorkerQueue::enqueue(std::vector<Task>& tasks) {
    std::unordered_map<std::string_view, std::size_t> caller_ids;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        detail::validate_new_task(tasks[i], i, impl_->config);
        if (tasks[i].id.empty()) continue;
        if (auto [it, fresh] = caller_ids.emplace(tasks[i].id, i); !fresh) {
            throw ValidationError("task " + std::to_string(i) + ": id: '" + tasks[i].id +
                                  "' is also the id of task " + std::to_string(it->second));
        }
    }
    if (tasks.empty()) return 0;
    return impl_->with_store([&](Store& s) {
        const std::int64_t now = impl_->now();
        const double now_s = static_cast<double>(now) / 1e6;
        // Fill in place; remember what was filled so a failed enqueue can undo it
        // and leave the caller's tasks as they were.
        std::vector<std::uint8_t> filled(tasks.size());
        enum : std::uint8_t { kId = 1, kSchedule = 2, kCreated = 4, kUpdated = 8 };
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            Task& t = tasks[i];
            if (t.id.empty()) {
                t.id = impl_->ulids.next(now / 1000);
                filled[i] |= kId;
            }
            if (t.schedule_at == 0) {
                t.schedule_at = now_s;
                filled[i] |= kSchedule;
            }
            if (t.created_at == 0) {
                t.created_at = now_s;
                filled[i] |= kCreated;
            }
            if (t.updated_at == 0) {
                t.updated_at = now_s;
                filled[i] |= kUpdated;
            }
        }
        TaskInsertResult result;
        try {
            result = s.task_insert(TaskInsertParams{&tasks});
        } catch (...) {
            for (std::size_t i = 0; i < tasks.size(); ++i) {
                if (filled[i] & kId) tasks[i].id.clear();
                if (filled[i] & kSchedule) tasks[i].schedule_at = 0;
                if (filled[i] & kCreated) tasks[i].created_at = 0;
                if (filled[i] & kUpdated) tasks[i].updated_at = 0;
            }
            throw;
        }
        for (auto& [index, existing_id] : result.deduplicated) {
            tasks[index].id = std::move(existing_id);
        }
        if (result.inserted > 0) impl_->signal_work();
        return result.inserted;
    });
}

void WorkerQueue::validate_task(const Task& task, std::size_t index) const {
    detail::validate_new_task(task, index, impl_->config);
}

std::vector<Task> WorkerQueue::dequeue(std::optional<std::int64_t> size, const std::string& queue) {
    const std::int64_t n = size.value_or(impl_->config.batch_size);
    if (n < 1 || n > 100'000) {
        throw ValidationError("dequeue: size must be 1..100000, got " + std::to_string(n));
    }
    if (!queue.empty() && !detail::is_valid_queue_name(queue)) {
        throw ValidationError("dequeue: queue must be 1-64 characters of A-Z a-z 0-9 _ . : -");
    }
    return impl_->with_store([&](Store& s) {
        return s.task_claim(TaskClaimParams{queue, n, impl_->now()});
    });
}

void WorkerQueue::mark_as_complete(const std::string& id, std::optional<std::int64_t> attempt) {
    impl_->transition(id, "complete", TaskState::PROCESSING, TaskState::COMPLETED, attempt);
}

void WorkerQueue::mark_as_retry(const std::string& id, const std::string& error,
                                std::optional<std::int64_t> attempt,
                                std::optional<double> not_before) {
    TaskSetStateParams p;
    p.error = detail::bounded_error(error);
    if (not_before) {
        if (!std::isfinite(*not_before) || *not_before < 0) {
            throw ValidationError("mark_as_retry: not_before must be a Unix time >= 0");
        }
        p.not_before_us = detail::seconds_to_us(*not_before);
    }
    impl_->transition(id, "retry", TaskState::PROCESSING, TaskState::RETRYABLE, attempt, p);
}

void WorkerQueue::mark_as_cancelled(const std::string& id, std::optional<std::int64_t> attempt) {
    impl_->transition(id, "cancel", TaskState::PENDING, TaskState::CANCELLED, attempt);
}

void WorkerQueue::mark_as_discarded(const std::string& id, std::optional<std::int64_t> attempt,
                                    const std::optional<std::string>& error) {
    TaskSetStateParams p;
    if (error) p.error = detail::bounded_error(*error);
    impl_->transition(id, "discard", TaskState::PROCESSING, TaskState::DISCARDED, attempt, p);
}

void WorkerQueue::mark_as_resume(const std::string& id, std::optional<std::int64_t> attempt) {
    TaskSetStateParams p;
    p.reset_attempts = true;
    p.schedule_now = true;
    impl_->transition(id, "resume", TaskState::DISCARDED, TaskState::PENDING, attempt, p);
    impl_->signal_work();
}

void WorkerQueue::heartbeat(const std::string& id, std::optional<std::int64_t> attempt) {
    TaskSetStateParams p;
    p.touch_heartbeat = true;
    impl_->transition(id, "heartbeat", TaskState::PROCESSING, TaskState::PROCESSING, attempt, p);
}

void WorkerQueue::mark_item_delivered(const std::string& id, std::int64_t item_index,
                                      std::optional<std::int64_t> attempt) {
    if (item_index < 0) throw ValidationError("item_index: must be >= 0");
    TaskSetStateParams p;
    p.touch_heartbeat = true;
    p.items_delivered = item_index + 1;
    impl_->transition(id, "mark_item_delivered", TaskState::PROCESSING, TaskState::PROCESSING,
                      attempt, p);
}

void WorkerQueue::release(const std::string& id, std::optional<std::int64_t> attempt) {
    TaskSetStateParams p;
    p.attempt_delta = -1;
    p.schedule_now = true;
    impl_->transition(id, "release", TaskState::PROCESSING, TaskState::PENDING, attempt, p);
    impl_->signal_work();
}

std::vector<Task> WorkerQueue::retry(std::optional<std::int64_t> size,
                                     std::optional<double> visibility_timeout,
                                     std::optional<std::int64_t> max_attempts) {
    const QueueConfig& c = impl_->config;
    TaskRescueParams p;
    p.limit = size.value_or(c.batch_size);
    if (p.limit < 1 || p.limit > 100'000) {
        throw ValidationError("retry: size must be 1..100000, got " + std::to_string(p.limit));
    }
    const double vt = visibility_timeout.value_or(c.default_visibility_timeout);
    if (!std::isfinite(vt) || vt <= 0)
        throw ValidationError("retry: visibility_timeout must be > 0");
    p.visibility_timeout_us = detail::seconds_to_us(vt);
    p.max_attempts = max_attempts.value_or(c.default_max_attempts);
    if (p.max_attempts < 1) throw ValidationError("retry: max_attempts must be >= 1");
    p.policy = RetryPolicy{c.retry_base_delay, c.retry_backoff_multiplier, c.max_retry_delay};
    p.error_history_limit = c.error_history_limit;
    p.max_stalls = c.max_stalls;
    auto moved = impl_->with_store([&](Store& s) {
        p.now_us = impl_->now();
        return s.task_rescue(p);
    });
    if (!moved.empty()) impl_->signal_work();
    return moved;
}

namespace {
std::map<std::string, std::int64_t> stats_map(const StateCounts& counts) {
    std::map<std::string, std::int64_t> out;
    std::int64_t total = 0;
    for (TaskState state : kAllTaskStates) {
        std::string name(to_string(state));
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        const std::int64_t n = counts[static_cast<std::size_t>(state)];
        out[name] = n;
        total += n;
    }
    out["total"] = total;
    return out;
}
}  // namespace

std::map<std::string, std::int64_t> WorkerQueue::get_queue_stats(const std::string& queue) {
    return stats_map(
        impl_->with_store([&](Store& s) { return s.task_count(TaskCountParams{queue}); }));
}

bool WorkerQueue::read_only() {
    return impl_->with_store([](Store& s) { return s.read_only(); });
}

std::string WorkerQueue::store_damage() {
    return impl_->with_store([](Store& s) { return s.damage(); });
}

std::vector<StoreFinding> WorkerQueue::check_store() {
    return impl_->with_store([](Store& s) { return s.check(); });
}

std::vector<QueueOverview> WorkerQueue::queue_overview() {
    const std::int64_t now_us = detail::seconds_to_us(clock().now_seconds());
    const auto queues = impl_->with_store([&](Store& s) { return s.task_overview(now_us); });
    std::vector<QueueOverview> out;
    out.reserve(queues.size());
    for (const QueueOverviewRow& q : queues) {
        QueueOverview summary{q.queue, stats_map(q.counts), std::nullopt};
        if (q.oldest_due_us)
            summary.oldest_due_age = detail::us_to_seconds(now_us - *q.oldest_due_us);
        out.push_back(std::move(summary));
    }
    return out;
}

double WorkerQueue::take_capacity(const std::string& name, const RateLimit& limit,
                                  std::int64_t characters) {
    if (name.empty() || name.size() > 200)
        throw ValidationError("rate limit name: must be 1 to 200 bytes");
    if (characters < 0) throw ValidationError("characters: must be >= 0");
    RateTakeParams p;
    p.now_us = detail::seconds_to_us(clock().now_seconds());
    // Rate r a second with a burst of r*60/24 bounds any 10-second window by
    // 10r + burst = per-minute/6 + per-minute/24 (SPEC §6).
    auto bucket = [&](const char* kind, double per_minute, double cost) {
        if (!std::isfinite(per_minute) || per_minute < 0 || per_minute > 1e12)
            throw ValidationError(std::string("rate limit ") + kind +
                                  " per minute: must be a number from 0 to 1e12");
        if (per_minute == 0) return;
        p.buckets.push_back(
            {name + "/" + kind, per_minute / 60, std::max(1.0, per_minute / 24), cost});
    };
    bucket("requests", limit.requests_per_minute, 1);
    bucket("characters", limit.characters_per_minute, static_cast<double>(characters));
    if (p.buckets.empty()) return 0;
    const std::int64_t wait_us = impl_->with_store([&](Store& s) { return s.rate_take(p); });
    return detail::us_to_seconds(wait_us);
}

namespace {
// A completion records every item as delivered without a separate write for the
// last one (the worker skips it); readers see the whole count.
void show_completed_progress(Task& t) {
    if (t.state == TaskState::COMPLETED)
        t.items_delivered = static_cast<std::int64_t>(t.items.size());
}
}  // namespace

Task WorkerQueue::get_task(const std::string& id) {
    auto task = impl_->with_store([&](Store& s) { return s.task_get(id); });
    if (!task) throw TaskNotFoundError(id);
    show_completed_progress(*task);
    return std::move(*task);
}

TaskPage WorkerQueue::list_tasks(const TaskFilter& filter, std::int64_t limit,
                                 const std::string& cursor) {
    if (limit < 1 || limit > 10'000) throw ValidationError("list: limit must be 1..10000");
    if (!cursor.empty() && !detail::is_valid_task_id(cursor)) {
        throw ValidationError("list: cursor is not one that list returned");
    }
    TaskPage page = impl_->with_store([&](Store& s) {
        return s.task_list(TaskListParams{filter.state, filter.queue, limit, cursor});
    });
    for (Task& t : page.tasks) show_completed_progress(t);
    return page;
}

std::int64_t WorkerQueue::purge(const std::vector<TaskState>& states, double older_than) {
    if (states.empty()) throw ValidationError("purge: name at least one state");
    for (TaskState s : states) {
        if (s != TaskState::COMPLETED && s != TaskState::CANCELLED && s != TaskState::DISCARDED) {
            throw ValidationError("purge: " + std::string(to_string(s)) +
                                  " tasks are not finished; purge takes COMPLETED, CANCELLED "
                                  "or DISCARDED");
        }
    }
    if (!std::isfinite(older_than) || older_than < 0) {
        throw ValidationError("purge: older_than must be >= 0 seconds");
    }
    return impl_->with_store([&](Store& s) {
        return s.task_purge(
            TaskPurgeParams{states, impl_->now() - detail::seconds_to_us(older_than), 1000});
    });
}

std::uint64_t WorkerQueue::work_epoch() const {
    std::lock_guard lock(impl_->wake_mutex);
    return impl_->epoch;
}

bool WorkerQueue::wait_for_work(std::uint64_t seen_epoch, double timeout_seconds) {
    std::unique_lock lock(impl_->wake_mutex);
    return impl_->wake.wait_for(lock, std::chrono::duration<double>(timeout_seconds),
                                [&] { return impl_->epoch != seen_epoch; });
}

void WorkerQueue::close() {
    std::unique_lock lock(impl_->life);
    if (!impl_->store) return;
    impl_->open = false;
    impl_->signal_work();  // let waiting workers notice
    impl_->store->close();
    // A store voxq opened itself can be opened again by initialize().
    if (impl_->owns_store_choice) impl_->store.reset();
}

const QueueConfig& WorkerQueue::config() const noexcept {
    return impl_->config;
}
const Clock& WorkerQueue::clock() const noexcept {
    return *impl_->clock;
}

Logger& WorkerQueue::logger() const noexcept {
    return *impl_->logger;
}

}  // namespace voxq
