#include "voxq/worker.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "util/env.hpp"
#include "util/text.hpp"
#include "worker/task_processor.hpp"

namespace voxq {

namespace {

std::int64_t micros_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
}

}  // namespace

struct Worker::Impl {
    WorkerQueue& queue;
    Logger& log;
    WorkerOptions options;
    std::shared_ptr<SpeechEngine> engines;
    std::shared_ptr<WebhookSender> sender;
    WorkerCounters counters;
    detail::TaskProcessor executor;

    std::atomic<bool> stopping = false;
    std::vector<std::thread> threads;

    std::mutex mutex;
    std::condition_variable idle;
    // Every task this worker holds (claimed, buffered or running): id -> attempt.
    std::map<std::string, std::int64_t> held;  // guarded by mutex
    std::deque<Task> buffer;                   // claimed, not started; guarded by mutex
    int idle_processors = 0;                   // guarded by mutex

    Impl(WorkerQueue& q, WorkerOptions o, std::shared_ptr<SpeechEngine> e,
         std::shared_ptr<WebhookSender> s)
        : queue(q),
          log(q.logger()),
          options(std::move(o)),
          engines(std::move(e)),
          sender(std::move(s)),
          executor(engines,
                   sender ? detail::DeliverFn([sender = sender](const Task& task, std::size_t item,
                                                                ItemAudio audio, std::int64_t at) {
                       return sender->deliver(task, item, std::move(audio), at);
                   })
                          : detail::DeliverFn(),
                   queue.clock(), {options.task_timeout, queue.config().max_retry_delay},
                   counters) {}

    // Runs a store call that settles a task; false when it was refused (the
    // lease was lost meanwhile, or the task was released at shutdown): the
    // expected end of a stale attempt.
    template <typename F>
    bool accepted(const Task& task, F&& call) {
        try {
            call();
            return true;
        } catch (const InvalidStateTransitionError& e) {
            log.debug("outcome refused: the attempt no longer holds the task",
                      {{"task_id", task.id}, {"attempt", task.attempt_count}, {"error", e.what()}});
            return false;
        }
    }

    // The completer (River's jobcompleter): applies an outcome to the queue and
    // counts it only once the store accepted it. A StoreError propagates: the
    // outcome was not recorded, and the lease and the sweep take the task back.
    void settle(const Task& task, const detail::TaskOutcome& outcome) {
        using Kind = detail::TaskOutcome::Kind;
        switch (outcome.kind) {
            case Kind::Completed:
                if (accepted(task, [&] { queue.mark_as_complete(task.id, task.attempt_count); })) {
                    ++counters.completed;
                    if (log.enabled(LogLevel::Debug)) {  // no field built per task otherwise
                        log.debug("task completed", {{"task_id", task.id},
                                                     {"attempt", task.attempt_count},
                                                     {"items", task.items.size()}});
                    }
                }
                break;
            case Kind::Retry:
                if (accepted(task, [&] {
                        queue.mark_as_retry(task.id, outcome.message, task.attempt_count,
                                            outcome.not_before);
                    })) {
                    ++counters.retried;
                    log.warning("attempt failed; the task will be retried",
                                {{"task_id", task.id},
                                 {"attempt", task.attempt_count},
                                 {"error", outcome.message}});
                }
                break;
            case Kind::Discard:
                if (accepted(task, [&] {
                        queue.mark_as_discarded(task.id, task.attempt_count, outcome.message);
                    })) {
                    ++counters.discarded;
                    log.warning("task discarded: it cannot succeed as submitted",
                                {{"task_id", task.id},
                                 {"attempt", task.attempt_count},
                                 {"error", outcome.message}});
                }
                break;
            case Kind::HandBack:
                hand_back(task.id, task.attempt_count);
                break;
            case Kind::LeaseLost:
                log.debug("attempt abandoned: another attempt holds the task now",
                          {{"task_id", task.id}, {"attempt", task.attempt_count}});
                break;
        }
    }

    // Gives a held task back without spending its attempt (stop, or a claim that
    // raced with it). A store error leaves it to the lease and the sweep.
    void hand_back(const std::string& id, std::int64_t attempt) {
        try {
            queue.release(id, attempt);
            ++counters.released;
            log.debug("task handed back (stopping)", {{"task_id", id}, {"attempt", attempt}});
        } catch (const QueueError& e) {
            log.warning("could not hand a task back; its lease will expire",
                        {{"task_id", id}, {"attempt", attempt}, {"error", e.what()}});
        }
    }

    // SPEC §5, §12: whatever a processor meets is its task's failure, never the
    // process's end. The task is retried (transient) with the message.
    void failed_unexpectedly(const Task& task, const std::string& what) noexcept {
        log.error("unexpected error while processing a task",
                  {{"task_id", task.id}, {"attempt", task.attempt_count}, {"error", what}});
        try {
            settle(task, {detail::TaskOutcome::Kind::Retry, "unexpected error: " + what, {}});
        } catch (...) {
            // The store refused too: the lease expires and the sweep takes it back.
        }
    }

    // Executes one claimed task and settles its outcome.
    void process(const Task& task) {
        const auto started = std::chrono::steady_clock::now();
        if (log.enabled(LogLevel::Debug)) {
            log.debug("task claimed", {{"task_id", task.id},
                                       {"attempt", task.attempt_count},
                                       {"items", task.items.size()},
                                       {"from_item", task.items_delivered}});
        }
        const detail::TaskOutcome outcome = executor.run(task, [&](std::int64_t item) {
            return accepted(task,
                            [&] { queue.mark_item_delivered(task.id, item, task.attempt_count); });
        });
        settle(task, outcome);
        counters.claim_to_finish.observe(static_cast<double>(micros_since(started)) / 1e6);
    }

    // The next task to run: from the buffer, else a fresh claim of up to as many
    // tasks as there are idle processors. nullopt when nothing is due.
    std::optional<Task> next_task() {
        std::unique_lock lock(mutex);
        if (buffer.empty()) {
            const int want = std::max(1, idle_processors);
            lock.unlock();
            std::vector<Task> claimed = queue.dequeue(want, options.queue);
            lock.lock();
            for (Task& t : claimed) {
                held.emplace(t.id, t.attempt_count);
                buffer.push_back(std::move(t));
            }
            if (buffer.empty()) return std::nullopt;
        }
        Task t = std::move(buffer.front());
        buffer.pop_front();
        return t;
    }

    void processor() {
        {
            std::lock_guard lock(mutex);
            ++idle_processors;
        }
        while (!stopping.load()) {
            const std::uint64_t epoch = queue.work_epoch();
            std::optional<Task> task;
            try {
                task = next_task();
                if (claim_failures > 0) {
                    log.info("claiming works again", {{"failed_claims", claim_failures.load()}});
                }
                claim_failures = 0;
            } catch (const std::exception& e) {
                // The store failed: back off (0.2 s doubling to 5 s) and try again.
                claim_back_off(e);
                continue;
            }
            if (!task) {
                queue.wait_for_work(epoch, options.poll_interval);
                continue;
            }
            if (stopping.load()) {
                hand_back(task->id, task->attempt_count);  // claimed as stop() began
                std::lock_guard lock(mutex);
                held.erase(task->id);
                idle.notify_all();
                break;
            }
            {
                std::lock_guard lock(mutex);
                --idle_processors;
            }
            try {
                process(*task);
            } catch (const StoreError& e) {
                // The outcome could not be recorded: the lease expires and the
                // sweep hands the task out again.
                log.warning(e.in_doubt() ? "the store may or may not have recorded the outcome; "
                                           "the lease and the sweep settle it"
                                         : "the store did not record the outcome; the lease and "
                                           "the sweep hand the task out again",
                            {{"task_id", task->id},
                             {"attempt", task->attempt_count},
                             {"error", e.what()},
                             {"retryable", e.retryable() ? "true" : "false"},
                             {"in_doubt", e.in_doubt() ? "true" : "false"}});
            } catch (const std::exception& e) {
                failed_unexpectedly(*task, e.what());
            } catch (...) {
                failed_unexpectedly(*task, "an exception of unknown type");
            }
            {
                std::lock_guard lock(mutex);
                ++idle_processors;
                held.erase(task->id);
            }
            idle.notify_all();
        }
    }

    // The admission of rate-limited engine calls (SpeechEngines::set_admission):
    // takes from the engine's budget in the store, which every worker on the
    // database shares, and waits until it grants. Waiting spends no attempt; a
    // stop cuts it short and the task goes back.
    void wait_for_capacity(const std::string& engine, const RateLimit& limit,
                           std::int64_t characters) {
        const auto started = std::chrono::steady_clock::now();
        struct Count {
            WorkerCounters& counters;
            std::chrono::steady_clock::time_point started;
            ~Count() { counters.capacity_wait_us += micros_since(started); }
        } count{counters, started};
        for (;;) {
            double wait = 0;
            try {
                wait = queue.take_capacity("engine:" + engine, limit, characters);
            } catch (const StoreError& e) {
                throw SpeechError(
                    "engine " + engine +
                        ": its shared rate limit could not be read from the store: " + e.what(),
                    false);
            }
            if (wait <= 0) return;
            std::unique_lock lock(mutex);
            // At most a second at a time: another process may have stopped using it.
            if (idle.wait_for(lock, std::chrono::duration<double>(std::min(wait, 1.0)),
                              [&] { return stopping.load(); })) {
                throw detail::StopWaiting();
            }
        }
    }

    // Consecutive failed claims, across processors (the store is shared).
    std::atomic<std::int64_t> claim_failures = 0;

    // After a failed claim: say so (once per outage, and every 100th failure),
    // then wait 0.2 s doubling to 5 s, less while stopping. A store error that is
    // not retryable (a read-only file, a broken schema) is an error, not a hiccup.
    void claim_back_off(const std::exception& e) {
        const std::int64_t failures = ++claim_failures;
        const auto* store_error = dynamic_cast<const StoreError*>(&e);
        const bool retryable = store_error != nullptr && store_error->retryable();
        if (failures == 1 || failures % 100 == 0) {
            const std::initializer_list<LogField> fields = {
                {"error", e.what()},
                {"failed_claims", failures},
                {"retryable", retryable ? "true" : "false"}};
            if (retryable) {
                log.warning("claiming failed; backing off", fields);
            } else {
                log.error("claiming failed with an error that is not transient; backing off",
                          fields);
            }
        }
        const auto delay = std::chrono::milliseconds(std::min<std::int64_t>(
            5000, std::int64_t{200} << std::min<std::int64_t>(failures - 1, 5)));
        std::unique_lock lock(mutex);
        idle.wait_for(lock, delay, [&] { return stopping.load(); });
    }

    [[nodiscard]] double heartbeat_interval() const {
        if (options.heartbeat_interval > 0) return options.heartbeat_interval;
        return std::min(60.0, queue.config().default_visibility_timeout / 3);
    }

    // The retry sweep and the heartbeats of held tasks, each on its own period.
    void housekeeper() {
        using Steady = std::chrono::steady_clock;
        const auto sweep_every = std::chrono::duration_cast<Steady::duration>(
            std::chrono::duration<double>(options.sweep_interval));
        const auto beat_every = std::chrono::duration_cast<Steady::duration>(
            std::chrono::duration<double>(heartbeat_interval()));
        Steady::time_point next_sweep = Steady::now();
        Steady::time_point next_beat = Steady::now() + beat_every;
        std::unique_lock lock(mutex);
        while (!stopping.load()) {
            const auto now = Steady::now();
            if (options.sweep_interval > 0 && now >= next_sweep) {
                lock.unlock();
                try {
                    const std::vector<Task> moved = queue.retry();
                    for (const Task& t : moved) {
                        if (t.state == TaskState::DISCARDED) {
                            log.warning("task discarded: out of attempts",
                                        {{"task_id", t.id},
                                         {"attempt", t.attempt_count},
                                         {"error", t.last_error}});
                        } else {
                            log.debug("task scheduled for another attempt",
                                      {{"task_id", t.id}, {"attempt", t.attempt_count}});
                        }
                    }
                } catch (const QueueError& e) {
                    log.warning("the retry sweep failed; it runs again next period",
                                {{"error", e.what()}});
                }
                lock.lock();
                next_sweep = now + sweep_every;
            }
            if (now >= next_beat) {
                const std::map<std::string, std::int64_t> beating = held;
                lock.unlock();
                for (const auto& [id, attempt] : beating) {
                    try {
                        queue.heartbeat(id, attempt);
                        ++counters.heartbeats;
                    } catch (const QueueError& e) {
                        // Settled meanwhile, or the store is down: the next beat retries.
                        log.debug("heartbeat refused",
                                  {{"task_id", id}, {"attempt", attempt}, {"error", e.what()}});
                    }
                }
                lock.lock();
                next_beat = now + beat_every;
            }
            Steady::time_point wake = next_beat;
            if (options.sweep_interval > 0) wake = std::min(wake, next_sweep);
            idle.wait_until(lock, wake, [&] { return stopping.load(); });
        }
    }
};

Worker::Worker(WorkerQueue& queue, WorkerOptions options, std::shared_ptr<SpeechEngine> engines,
               std::shared_ptr<WebhookSender> sender)
    : impl_(std::make_unique<Impl>(queue, std::move(options), std::move(engines),
                                   std::move(sender))) {
    // Rate-limited engine calls draw on the store's shared budget, whether this
    // worker runs its own processors or is driven through process(). One worker
    // per SpeechEngines: the last one made sets it.
    if (auto router = std::dynamic_pointer_cast<SpeechEngines>(impl_->engines)) {
        router->set_admission([impl = impl_.get()](const std::string& engine,
                                                   const RateLimit& limit,
                                                   std::int64_t characters) {
            impl->wait_for_capacity(engine, limit, characters);
        });
    }
}

Worker::~Worker() {
    stop();
    if (auto router = std::dynamic_pointer_cast<SpeechEngines>(impl_->engines)) {
        router->set_admission(nullptr);  // it points into this worker
    }
}

void Worker::start() {
    if (impl_->queue.read_only()) {
        // Fail at once, not with every claim of every processor.
        throw StoreError("workers cannot run on a read-only database (" +
                             redact_credentials(impl_->queue.config().database_url) +
                             "): they claim and settle tasks",
                         false);
    }
    for (int i = 0; i < impl_->options.concurrency; ++i) {
        impl_->threads.emplace_back([impl = impl_.get()] { impl->processor(); });
    }
    impl_->threads.emplace_back([impl = impl_.get()] { impl->housekeeper(); });
}

void Worker::stop() {
    if (impl_->threads.empty()) return;
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->idle.notify_all();
    // Claimed tasks not started go back at once; tasks running get the grace
    // period; what is still running after it is handed back too (its
    // processor's late outcome is then refused by fencing). The store calls run
    // outside the lock, on copies.
    std::vector<std::pair<std::string, std::int64_t>> unstarted;
    {
        std::lock_guard lock(impl_->mutex);
        for (const Task& t : impl_->buffer) {
            unstarted.emplace_back(t.id, t.attempt_count);
            impl_->held.erase(t.id);
        }
        impl_->buffer.clear();
    }
    for (const auto& [id, attempt] : unstarted) impl_->hand_back(id, attempt);
    std::map<std::string, std::int64_t> still_running;
    {
        std::unique_lock lock(impl_->mutex);
        impl_->idle.wait_for(lock, std::chrono::duration<double>(impl_->options.grace_period),
                             [&] { return impl_->held.empty(); });
        still_running = impl_->held;
    }
    for (const auto& [id, attempt] : still_running) impl_->hand_back(id, attempt);
    for (auto& t : impl_->threads) t.join();
    impl_->threads.clear();
}

const WorkerCounters& Worker::counters() const {
    return impl_->counters;
}

void Worker::process(const Task& task) {
    impl_->process(task);
}

WorkerOptions WorkerOptions::from_env() {
    WorkerOptions o;
    o.task_timeout = env::Reader()
                         .number("VOXQ_TASK_TIMEOUT",
                                 {0, 366.0 * 24 * 3600, false, " seconds (0 = no deadline)"})
                         .value_or(o.task_timeout);
    return o;
}

}  // namespace voxq
