// Worker threads for race tests: the guide's worker loop, made to survive a
// store that fails for a while (a restarting server).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "voxq/queue.hpp"

namespace voxq::testing {

struct DrainResult {
    std::vector<std::string> completed;  // ids whose mark_as_complete succeeded
    std::int64_t dequeued = 0;           // tasks handed out to these threads
    std::int64_t store_errors = 0;       // StoreErrors survived (and retried)
};

struct DrainOptions {
    int threads = 4;
    std::int64_t batch = 10;
    int idle_rounds = 3;  // stop after this many empty dequeues in a row (5 ms apart)
    // Called after each successful completion (e.g. to log it for a crash test).
    std::function<void(const std::string&)> on_complete;
};

inline DrainOptions with_threads(int threads) {
    DrainOptions options;
    options.threads = threads;
    return options;
}

// Drains `queue`: each thread dequeues `batch` at a time and completes each task
// on its own, with its attempt (fencing). A StoreError is retried after a short
// pause; a completion that was in doubt and turns out to have happened already
// (the task is COMPLETED) counts as done by this worker only if the retry
// succeeded, so `completed` never holds a task twice for one success.
inline DrainResult drain(WorkerQueue& queue, const DrainOptions& options) {
    std::mutex mu;
    DrainResult result;
    std::vector<std::thread> pool;
    for (int i = 0; i < options.threads; ++i) {
        pool.emplace_back([&] {
            DrainResult mine;
            int idle = 0;
            while (idle < options.idle_rounds) {
                std::vector<Task> tasks;
                try {
                    tasks = queue.dequeue(options.batch);
                } catch (const StoreError&) {
                    ++mine.store_errors;
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                    continue;
                }
                if (tasks.empty()) {
                    ++idle;
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                    continue;
                }
                idle = 0;
                mine.dequeued += static_cast<std::int64_t>(tasks.size());
                for (const Task& t : tasks) {
                    for (;;) {
                        try {
                            queue.mark_as_complete(t.id, t.attempt_count);
                            mine.completed.push_back(t.id);
                            if (options.on_complete) options.on_complete(t.id);
                        } catch (const StoreError&) {
                            ++mine.store_errors;
                            std::this_thread::sleep_for(std::chrono::milliseconds(50));
                            continue;
                        } catch (const InvalidStateTransitionError&) {
                            // An in-doubt completion that did happen, or a lease
                            // lost to the sweep: either way not ours to count.
                        }
                        break;
                    }
                }
            }
            std::lock_guard lock(mu);
            result.completed.insert(result.completed.end(), mine.completed.begin(),
                                    mine.completed.end());
            result.dequeued += mine.dequeued;
            result.store_errors += mine.store_errors;
        });
    }
    for (auto& t : pool) t.join();
    return result;
}

}  // namespace voxq::testing
