#include "voxq/worker.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace voxq {

struct Worker::Impl {
    WorkerQueue& queue;
    WorkerOptions options;
    std::shared_ptr<SpeechEngine> espeak;
    std::shared_ptr<WebhookSender> sender;
    WorkerCounters counters;

    std::atomic<bool> stopping = false;
    std::vector<std::thread> threads;

    std::mutex mutex;
    std::condition_variable idle;
    std::set<std::pair<std::string, std::int64_t>> in_flight;  // guarded by mutex

    Impl(WorkerQueue& q, WorkerOptions o, std::shared_ptr<SpeechEngine> e,
         std::shared_ptr<WebhookSender> s)
        : queue(q), options(std::move(o)), espeak(std::move(e)), sender(std::move(s)) {}

    // Settles one task; a refused call (the lease was lost meanwhile, or the
    // task was released at shutdown) is the expected end of a stale attempt.
    template <typename F>
    void settle(F&& call) {
        try {
            call();
        } catch (const InvalidStateTransitionError&) {
        }
    }

    void process(const Task& task) {
        const double now = queue.clock().now_seconds();
        for (std::size_t i = 0; i < task.items.size(); ++i) {
            const TaskItem& item = task.items[i];
            const std::string engine =
                item.request.voice_id.substr(0, item.request.voice_id.find('.'));
            if (engine != "espeak" || !espeak) {
                ++counters.discarded;
                std::string why = "engine '";
                why += engine;
                why += "' is not configured (set VOXQ_ENGINE_";
                why += engine;
                why += "_URL), then resume the task";
                return settle([&] { queue.mark_as_discarded(task.id, task.attempt_count, why); });
            }
            WebhookRequest request;
            try {
                const EncodedAudio encoded =
                    encode_audio(espeak->synthesize(item.request), item.request.format);
                request.body = encoded.bytes;
                request.content_type = encoded.content_type;
            } catch (const SpeechError& e) {
                if (e.permanent()) {
                    ++counters.discarded;
                    return settle(
                        [&] { queue.mark_as_discarded(task.id, task.attempt_count, e.what()); });
                }
                ++counters.retried;
                return settle([&] { queue.mark_as_retry(task.id, e.what(), task.attempt_count); });
            }
            request.url = item.response_url;
            request.message_id = task.id + "." + std::to_string(i);  // stable across retries
            request.headers = {{"voxq-task-id", task.id},
                               {"voxq-item", std::to_string(i)},
                               {"voxq-voice", item.request.voice_id},
                               {"voxq-attempt", std::to_string(task.attempt_count)}};
            const WebhookOutcome out =
                sender->send(request, static_cast<std::int64_t>(queue.clock().now_seconds()));
            switch (out.kind) {
                case WebhookOutcome::Kind::Delivered:
                    ++counters.items_delivered;
                    break;
                case WebhookOutcome::Kind::Transient: {
                    ++counters.retried;
                    std::optional<double> not_before;
                    if (out.retry_after) not_before = now + *out.retry_after;
                    return settle([&] {
                        queue.mark_as_retry(task.id,
                                            "item " + std::to_string(i) + ": " + out.message,
                                            task.attempt_count, not_before);
                    });
                }
                case WebhookOutcome::Kind::Permanent:
                case WebhookOutcome::Kind::Refused:
                    ++counters.discarded;
                    return settle([&] {
                        queue.mark_as_discarded(task.id, task.attempt_count,
                                                "item " + std::to_string(i) + ": " + out.message);
                    });
            }
        }
        ++counters.completed;
        settle([&] { queue.mark_as_complete(task.id, task.attempt_count); });
    }

    void processor() {
        while (!stopping.load()) {
            const std::uint64_t epoch = queue.work_epoch();
            std::vector<Task> tasks;
            try {
                tasks = queue.dequeue(1, options.queue);
            } catch (const StoreError&) {
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                continue;
            }
            if (tasks.empty()) {
                queue.wait_for_work(epoch, options.poll_interval);
                continue;
            }
            const Task& task = tasks.front();
            {
                std::lock_guard lock(mutex);
                in_flight.emplace(task.id, task.attempt_count);
            }
            try {
                process(task);
            } catch (const StoreError&) {
                // The outcome could not be recorded: the lease expires and the
                // sweep hands the task out again.
            }
            {
                std::lock_guard lock(mutex);
                in_flight.erase({task.id, task.attempt_count});
            }
            idle.notify_all();
        }
    }

    void sweeper() {
        std::unique_lock lock(mutex);
        while (!stopping.load()) {
            lock.unlock();
            try {
                queue.retry();
            } catch (const QueueError&) {
            }
            lock.lock();
            idle.wait_for(lock, std::chrono::duration<double>(options.sweep_interval),
                          [&] { return stopping.load(); });
        }
    }
};

Worker::Worker(WorkerQueue& queue, WorkerOptions options, std::shared_ptr<SpeechEngine> espeak,
               std::shared_ptr<WebhookSender> sender)
    : impl_(std::make_unique<Impl>(queue, std::move(options), std::move(espeak),
                                   std::move(sender))) {}

Worker::~Worker() {
    stop();
}

void Worker::start() {
    for (int i = 0; i < impl_->options.concurrency; ++i) {
        impl_->threads.emplace_back([impl = impl_.get()] { impl->processor(); });
    }
    if (impl_->options.sweep_interval > 0) {
        impl_->threads.emplace_back([impl = impl_.get()] { impl->sweeper(); });
    }
}

void Worker::stop() {
    if (impl_->threads.empty()) return;
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->idle.notify_all();
    {
        // Tasks in flight get the grace period; what is still running after it is
        // handed back (its processor's late outcome is then refused by fencing).
        std::unique_lock lock(impl_->mutex);
        impl_->idle.wait_for(lock, std::chrono::duration<double>(impl_->options.grace_period),
                             [&] { return impl_->in_flight.empty(); });
        for (const auto& [id, attempt] : impl_->in_flight) {
            try {
                impl_->queue.release(id, attempt);
                ++impl_->counters.released;
            } catch (const QueueError&) {
            }
        }
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

}  // namespace voxq
