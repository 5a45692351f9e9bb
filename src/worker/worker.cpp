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
    WorkerOptions options;
    std::shared_ptr<SpeechEngine> engines;
    std::shared_ptr<WebhookSender> sender;
    WorkerCounters counters;

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
        : queue(q), options(std::move(o)), engines(std::move(e)), sender(std::move(s)) {}

    // Settles one task; a refused call (the lease was lost meanwhile, or the
    // task was released at shutdown) is the expected end of a stale attempt.
    template <typename F>
    static bool settle(F&& call) {
        try {
            call();
            return true;
        } catch (const InvalidStateTransitionError&) {
            return false;
        }
    }

    void discard(const Task& task, const std::string& why) {
        ++counters.discarded;
        settle([&] { queue.mark_as_discarded(task.id, task.attempt_count, why); });
    }
    // Gives a held task back without spending its attempt (stop, or a claim that
    // raced with it). A store error leaves it to the lease and the sweep.
    void hand_back(const std::string& id, std::int64_t attempt) {
        try {
            queue.release(id, attempt);
            ++counters.released;
        } catch (const QueueError&) {
        }
    }
    void retry_later(const Task& task, const std::string& why,
                     std::optional<double> not_before = {}) {
        ++counters.retried;
        settle([&] { queue.mark_as_retry(task.id, why, task.attempt_count, not_before); });
    }

    // SPEC §5, §12: whatever a processor meets is its task's failure, never the
    // process's end. The task is retried (transient) with the message.
    void failed_unexpectedly(const Task& task, const std::string& what) noexcept {
        try {
            std::fprintf(stderr, "voxq worker: task %s attempt %lld: unexpected error: %s\n",
                         task.id.c_str(), static_cast<long long>(task.attempt_count),
                         escape_for_terminal(truncate_utf8(what, 500)).c_str());
            retry_later(task, "unexpected error: " + what);
        } catch (...) {
            // The store refused too: the lease expires and the sweep takes it back.
        }
    }

    void process(const Task& task) {
        const auto started = std::chrono::steady_clock::now();
        struct Finish {
            DurationHistogram& histogram;
            std::chrono::steady_clock::time_point started;
            ~Finish() { histogram.observe(static_cast<double>(micros_since(started)) / 1e6); }
        } finish{counters.claim_to_finish, started};
        const double deadline = options.task_timeout > 0
                                    ? queue.clock().now_seconds() + options.task_timeout
                                    : std::numeric_limits<double>::infinity();
        const auto first =
            static_cast<std::size_t>(std::max<std::int64_t>(0, task.items_delivered));
        counters.items_skipped += static_cast<std::int64_t>(std::min(first, task.items.size()));
        for (std::size_t i = first; i < task.items.size(); ++i) {
            const TaskItem& item = task.items[i];
            const std::string label = "item " + std::to_string(i) + ": ";
            if (queue.clock().now_seconds() >= deadline) {
                char seconds[32];
                std::snprintf(seconds, sizeof seconds, "%g", options.task_timeout);
                return retry_later(task, label + "not started: the attempt ran past " +
                                             "VOXQ_TASK_TIMEOUT (" + seconds + " s)");
            }
            WebhookRequest request;
            try {
                auto start = std::chrono::steady_clock::now();
                const Audio audio = engines->synthesize(item.request);
                counters.synthesis.observe(static_cast<double>(micros_since(start)) / 1e6);
                start = std::chrono::steady_clock::now();
                EncodedAudio encoded = encode_audio(audio, item.request.format);
                counters.encoding_us += micros_since(start);
                counters.audio_ms += static_cast<std::int64_t>(audio.seconds() * 1000);
                request.body = std::move(encoded.bytes);
                request.content_type = std::move(encoded.content_type);
            } catch (const SpeechError& e) {
                if (e.permanent()) return discard(task, label + e.what());
                return retry_later(task, label + e.what());
            }
            request.url = item.response_url;
            request.message_id = task.id + "." + std::to_string(i);  // stable across retries
            request.headers = {{"voxq-task-id", task.id},
                               {"voxq-item", std::to_string(i)},
                               {"voxq-item-count", std::to_string(task.items.size())},
                               {"voxq-voice", item.request.voice_id},
                               {"voxq-attempt", std::to_string(task.attempt_count)}};
            const auto start = std::chrono::steady_clock::now();
            const WebhookOutcome out =
                sender->send(request, static_cast<std::int64_t>(queue.clock().now_seconds()));
            counters.delivery_us += micros_since(start);
            switch (out.kind) {
                case WebhookOutcome::Kind::Delivered:
                    ++counters.items_delivered;
                    // Recorded at once, so a crash after this point does not send it
                    // again; the last item is recorded by the completion itself.
                    if (i + 1 < task.items.size() && !settle([&] {
                            queue.mark_item_delivered(task.id, static_cast<std::int64_t>(i),
                                                      task.attempt_count);
                        }))
                        return;  // the lease was lost: another attempt owns the task
                    break;
                case WebhookOutcome::Kind::Transient: {
                    ++counters.webhooks_transient;
                    std::optional<double> not_before;
                    if (out.retry_after)  // never later than the longest backoff
                        not_before = queue.clock().now_seconds() +
                                     std::min(*out.retry_after, queue.config().max_retry_delay);
                    return retry_later(task, label + out.message, not_before);
                }
                case WebhookOutcome::Kind::Permanent:
                    ++counters.webhooks_permanent;
                    return discard(task, label + out.message);
                case WebhookOutcome::Kind::Refused:
                    ++counters.webhooks_refused;
                    return discard(task, label + out.message);
            }
        }
        ++counters.completed;
        settle([&] { queue.mark_as_complete(task.id, task.attempt_count); });
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
            } catch (const std::exception&) {  // the store failed; try again shortly
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
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
            } catch (const StoreError&) {
                // The outcome could not be recorded: the lease expires and the
                // sweep hands the task out again.
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
                    queue.retry();
                } catch (const QueueError&) {
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
                    } catch (const QueueError&) {
                        // Settled meanwhile, or the store is down: the next beat retries.
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
                                   std::move(sender))) {}

Worker::~Worker() {
    stop();
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
    {
        // Claimed tasks not started go back at once; tasks running get the grace
        // period; what is still running after it is handed back too (its
        // processor's late outcome is then refused by fencing).
        std::unique_lock lock(impl_->mutex);
        for (const Task& t : impl_->buffer) {
            impl_->hand_back(t.id, t.attempt_count);
            impl_->held.erase(t.id);
        }
        impl_->buffer.clear();
        impl_->idle.wait_for(lock, std::chrono::duration<double>(impl_->options.grace_period),
                             [&] { return impl_->held.empty(); });
        for (const auto& [id, attempt] : impl_->held) impl_->hand_back(id, attempt);
    }
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
