// The executor half of the worker (River's jobexecutor): runs one claimed task
// (synthesize, encode, deliver each item in order) and returns what should
// happen to it as a value. It settles nothing; Worker::Impl::settle (the
// completer) applies the outcome to the queue and counts only what the store
// accepted. Its one write is the progress of a multi-item task, through
// `record_delivered`, so a crash never sends a delivered item again.
//
// Thread-safe: one TaskProcessor serves every processor thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "voxq/clock.hpp"
#include "voxq/speech.hpp"
#include "voxq/task.hpp"
#include "voxq/webhook.hpp"
#include "voxq/worker.hpp"

namespace voxq::detail {

struct TaskOutcome {
    enum class Kind {
        Completed,  // every item delivered
        Retry,      // transient: again after the backoff, not before `not_before`
        Discard,    // permanent: an operator must act
        LeaseLost,  // another attempt owns the task now: do nothing
        HandBack,   // the worker is stopping: give the task back, attempt unspent
    };
    Kind kind = Kind::Completed;
    std::string message;               // Retry, Discard: why ("item 2: HTTP 503 ...")
    std::optional<double> not_before;  // Retry: earliest next attempt (queue clock, seconds)
};

// Thrown through the engine by a wait the worker cut short because it is
// stopping (waiting for an engine's rate limit): the task goes back unspent.
struct StopWaiting : std::runtime_error {
    StopWaiting() : std::runtime_error("the worker is stopping") {}
};

// Delivers one item's audio: WebhookSender::deliver in production, a fake in
// unit tests.
using DeliverFn = std::function<WebhookOutcome(const Task&, std::size_t item, ItemAudio audio,
                                               std::int64_t timestamp)>;
// Records that item `index` was delivered; false when the lease was lost.
using RecordDeliveredFn = std::function<bool(std::int64_t index)>;

struct ProcessorSettings {
    double task_timeout = 0;        // WorkerOptions::task_timeout; 0 = none
    double max_retry_delay = 3600;  // QueueConfig::max_retry_delay: Retry-After's ceiling
};

class TaskProcessor {
  public:
    // `counters` gets the per-item measures (synthesis, encoding, delivery, the
    // webhook outcome classes); the task outcomes are counted by the completer.
    TaskProcessor(std::shared_ptr<SpeechEngine> engine, DeliverFn deliver, const Clock& clock,
                  ProcessorSettings settings, WorkerCounters& counters);

    // Never throws for what an engine or receiver does (those are outcomes);
    // throws what `record_delivered` throws (a store error).
    [[nodiscard]] TaskOutcome run(const Task& task,
                                  const RecordDeliveredFn& record_delivered) const;

  private:
    // Synthesizes and encodes one item (throws what the engine throws).
    [[nodiscard]] ItemAudio prepare(const TaskItem& item) const;

    std::shared_ptr<SpeechEngine> engine_;
    DeliverFn deliver_;
    const Clock& clock_;
    ProcessorSettings settings_;
    WorkerCounters& counters_;
};

}  // namespace voxq::detail
