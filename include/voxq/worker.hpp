// File: voxq/worker.hpp
//
// The built-in worker: claims TTS tasks, synthesizes each item, delivers the
// audio to its webhook and settles the task (SPEC §5-§7). N processor threads
// plus a housekeeper (the retry sweep, and heartbeats for every task held, so
// long tasks keep their lease); idle processors sleep until work arrives
// (WorkerQueue::wait_for_work) or the poll interval passes. Processors claim in
// batches of up to the number of idle processors.
//
// Items are delivered in order, and each delivery is recorded
// (mark_item_delivered): a later attempt starts at the first item not delivered.
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

#include <array>
#include <atomic>
#include <memory>
#include <string>

#include "voxq/metrics.hpp"
#include "voxq/queue.hpp"
#include "voxq/speech.hpp"
#include "voxq/webhook.hpp"

namespace voxq {

struct WorkerOptions {
    int concurrency = 4;         // processor threads
    std::string queue;           // empty = every queue
    double poll_interval = 1.0;  // seconds an idle processor waits for a wake-up
    double sweep_interval = 10;  // seconds between retry sweeps; 0 = no sweep
    double grace_period = 30;    // seconds stop() waits for tasks in flight
    // seconds between heartbeats of held tasks; 0 = a third of the queue's
    // visibility timeout (at most 60)
    double heartbeat_interval = 0;
    // VOXQ_TASK_TIMEOUT: seconds one attempt may take (checked before each item,
    // on the queue's clock); past it the attempt is failed as transient. 0 = none.
    double task_timeout = 0;

    // The defaults with VOXQ_TASK_TIMEOUT read (ConfigError naming it if bad).
    static WorkerOptions from_env();
};

class Worker {
  public:
    // `queue` must outlive the worker and be initialized. `engines` is usually a
    // SpeechEngines (routing by voice_id); an engine's permanent errors discard.
    Worker(WorkerQueue& queue, WorkerOptions options, std::shared_ptr<SpeechEngine> engines,
           std::shared_ptr<WebhookSender> sender);
    ~Worker();  // stop()
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void start();
    void stop();
    [[nodiscard]] const WorkerCounters& counters() const;

    // Processes one claimed task to its outcome and settles it, for callers that
    // run their own claim loop (the Python module's `await worker.process(task)`);
    // start() does the same on its processor threads.
    void process(const Task& task);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace voxq
