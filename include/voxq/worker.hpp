// File: voxq/worker.hpp
//
// The built-in worker: claims TTS tasks, synthesizes each item, delivers the
// audio to its webhook and settles the task (SPEC §5-§7). N processor threads
// plus the retry sweep; idle processors sleep until work arrives
// (WorkerQueue::wait_for_work) or the poll interval passes.
//
// Outcomes: every item delivered -> mark_as_complete; a transient failure
// (5xx/408/429, timeout, engine crash) -> mark_as_retry, honouring Retry-After;
// a permanent one (4xx, refused address, unknown engine or voice, unsupported
// format) -> mark_as_discarded with a message saying what to fix. Every call
// carries the attempt (fencing).
//
// stop(): claims no more; waits up to the grace period for tasks in flight;
// hands the rest back with release() (no attempt spent). Thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "voxq/queue.hpp"
#include "voxq/tts.hpp"
#include "voxq/webhook.hpp"

namespace voxq {

struct WorkerOptions {
    int concurrency = 4;         // processor threads
    std::string queue;           // empty = every queue
    double poll_interval = 1.0;  // seconds an idle processor waits for a wake-up
    double sweep_interval = 10;  // seconds between retry sweeps; 0 = no sweep
    double grace_period = 30;    // seconds stop() waits for tasks in flight
};

struct WorkerCounters {
    std::atomic<std::int64_t> completed = 0;
    std::atomic<std::int64_t> retried = 0;
    std::atomic<std::int64_t> discarded = 0;
    std::atomic<std::int64_t> released = 0;
    std::atomic<std::int64_t> items_delivered = 0;
};

class Worker {
  public:
    // `queue` must outlive the worker and be initialized.
    Worker(WorkerQueue& queue, WorkerOptions options, std::shared_ptr<SpeechEngine> espeak,
           std::shared_ptr<WebhookSender> sender);
    ~Worker();  // stop()
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void start();
    void stop();
    [[nodiscard]] const WorkerCounters& counters() const;

    // Processes one claimed task to its outcome (used by the processors; public
    // for tests that drive a task by hand).
    void process(const Task& task);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace voxq
