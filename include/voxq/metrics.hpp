// File: voxq/metrics.hpp
//
// What a worker counts and measures, for /metrics and the benchmarks: lock-free
// counters and Prometheus-style duration histograms, updated from many threads.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace voxq {

// Durations in Prometheus histogram buckets (seconds); updated from many threads.
struct DurationHistogram {
    static constexpr std::array<double, 12> kBounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                    0.5,   1,    2.5,   5,    10,  30};
    std::array<std::atomic<std::int64_t>, kBounds.size() + 1> buckets{};  // last: +Inf
    std::atomic<std::int64_t> sum_us = 0;
    void observe(double seconds) {
        std::size_t i = 0;
        while (i < kBounds.size() && seconds > kBounds[i]) ++i;
        ++buckets[i];
        sum_us += static_cast<std::int64_t>(seconds * 1e6);
    }
};

struct WorkerCounters {
    std::atomic<std::int64_t> completed = 0;
    std::atomic<std::int64_t> retried = 0;
    std::atomic<std::int64_t> discarded = 0;
    std::atomic<std::int64_t> released = 0;
    std::atomic<std::int64_t> items_delivered = 0;  // webhooks answered 2xx
    std::atomic<std::int64_t> items_skipped = 0;    // delivered by an earlier attempt
    std::atomic<std::int64_t> heartbeats = 0;
    // Where the time goes besides synthesis (its histogram below has the sum):
    // microseconds, summed over processors.
    std::atomic<std::int64_t> encoding_us = 0;
    std::atomic<std::int64_t> delivery_us = 0;
    std::atomic<std::int64_t> audio_ms = 0;  // length of the audio delivered
    // Waiting for an engine's shared rate limit (SPEC §6): not a failed attempt.
    std::atomic<std::int64_t> capacity_wait_us = 0;
    // The other webhook outcomes by class (SPEC §7); delivered is items_delivered.
    std::atomic<std::int64_t> webhooks_transient = 0;
    std::atomic<std::int64_t> webhooks_permanent = 0;
    std::atomic<std::int64_t> webhooks_refused = 0;
    DurationHistogram claim_to_finish;  // a task's attempt, from its start to its outcome
    DurationHistogram synthesis;        // one engine call (all pieces of a split text)
};

}  // namespace voxq
