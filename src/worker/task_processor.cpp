#include "worker/task_processor.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <limits>
#include <stdexcept>

namespace voxq::detail {

namespace {

std::int64_t micros_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
}

TaskOutcome retry(std::string message, std::optional<double> not_before = {}) {
    return {TaskOutcome::Kind::Retry, std::move(message), not_before};
}
TaskOutcome discard(std::string message) {
    return {TaskOutcome::Kind::Discard, std::move(message), std::nullopt};
}

}  // namespace

TaskProcessor::TaskProcessor(std::shared_ptr<SpeechEngine> engine, DeliverFn deliver,
                             const Clock& clock, ProcessorSettings settings,
                             WorkerCounters& counters)
    : engine_(std::move(engine)),
      deliver_(std::move(deliver)),
      clock_(clock),
      settings_(settings),
      counters_(counters) {}

ItemAudio TaskProcessor::prepare(const TaskItem& item) const {
    auto start = std::chrono::steady_clock::now();
    const Audio audio = engine_->synthesize(item.request);
    counters_.synthesis.observe(static_cast<double>(micros_since(start)) / 1e6);
    start = std::chrono::steady_clock::now();
    EncodedAudio encoded = encode_audio(audio, item.request.format);
    counters_.encoding_us += micros_since(start);
    counters_.audio_ms += static_cast<std::int64_t>(audio.seconds() * 1000);
    return {std::move(encoded.bytes),
            std::move(encoded.content_type),
            item.request.format,
            audio.sample_rate,
            1,
            audio.seconds()};
}

TaskOutcome TaskProcessor::run(const Task& task, const RecordDeliveredFn& record_delivered) const {
    if (!engine_ || !deliver_) throw std::logic_error("the worker has no speech engine or sender");
    const double deadline = settings_.task_timeout > 0
                                ? clock_.now_seconds() + settings_.task_timeout
                                : std::numeric_limits<double>::infinity();
    const auto first = static_cast<std::size_t>(std::max<std::int64_t>(0, task.items_delivered));
    counters_.items_skipped += static_cast<std::int64_t>(std::min(first, task.items.size()));
    // The next item's speech, made while this one is delivered (SPEC §6), so the
    // engine is not idle while a receiver answers. The deadline is checked
    // before each item is delivered and before its synthesis starts; if the
    // attempt ends early, the destructor waits for the item made ahead (with a
    // speech cache, that work is kept for the next attempt).
    std::future<ItemAudio> ahead;
    for (std::size_t i = first; i < task.items.size(); ++i) {
        const std::string label = "item " + std::to_string(i) + ": ";
        if (clock_.now_seconds() >= deadline) {
            char seconds[32];
            std::snprintf(seconds, sizeof seconds, "%g", settings_.task_timeout);
            return retry(label + "not started: the attempt ran past VOXQ_TASK_TIMEOUT (" + seconds +
                         " s)");
        }
        ItemAudio delivered;
        try {
            delivered = ahead.valid() ? ahead.get() : prepare(task.items[i]);
        } catch (const SpeechError& e) {
            return e.permanent() ? discard(label + e.what()) : retry(label + e.what());
        } catch (const StopWaiting&) {
            return {TaskOutcome::Kind::HandBack, "", std::nullopt};
        }
        if (i + 1 < task.items.size() && clock_.now_seconds() < deadline) {
            ahead = std::async(std::launch::async,
                               [this, &next = task.items[i + 1]] { return prepare(next); });
        }
        const auto start = std::chrono::steady_clock::now();
        const WebhookOutcome out = deliver_(task, i, std::move(delivered),
                                            static_cast<std::int64_t>(clock_.now_seconds()));
        counters_.delivery_us += micros_since(start);
        switch (out.kind) {
            case WebhookOutcome::Kind::Delivered:
                ++counters_.items_delivered;
                // Recorded at once, so a crash after this point does not send it
                // again; the last item is recorded by the completion itself.
                if (i + 1 < task.items.size() && !record_delivered(static_cast<std::int64_t>(i))) {
                    return {TaskOutcome::Kind::LeaseLost, "", std::nullopt};
                }
                break;
            case WebhookOutcome::Kind::Transient: {
                ++counters_.webhooks_transient;
                std::optional<double> not_before;
                if (out.retry_after) {  // never later than the longest backoff
                    not_before = clock_.now_seconds() +
                                 std::min(*out.retry_after, settings_.max_retry_delay);
                }
                return retry(label + out.message, not_before);
            }
            case WebhookOutcome::Kind::Permanent:
                ++counters_.webhooks_permanent;
                return discard(label + out.message);
            case WebhookOutcome::Kind::Refused:
                ++counters_.webhooks_refused;
                return discard(label + out.message);
        }
    }
    return {};
}

}  // namespace voxq::detail
