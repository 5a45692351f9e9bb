// The queue's rules that every store applies the same way, written once: claim
// order, why a guarded transition was refused, what the retry sweep does to a
// task, how a rate limit's token buckets pay, and the shape of a built-in
// migration.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/time.hpp"
#include "voxq/errors.hpp"
#include "voxq/store.hpp"

namespace voxq::detail {

// Highest priority first, then earliest schedule_at, then id.
inline void sort_in_claim_order(std::vector<Task>& tasks) {
    std::sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) {
        if (a.priority != b.priority) return a.priority > b.priority;
        if (a.schedule_at != b.schedule_at) return a.schedule_at < b.schedule_at;
        return a.id < b.id;
    });
}

// The task's state and attempt when a guarded transition matched no row.
struct CurrentTask {
    TaskState state;
    std::int64_t attempt_count;
};

// Throws the error that explains the refusal: not found, a stale attempt
// (fencing), or the wrong state.
[[noreturn]] inline void throw_refusal(const TaskSetStateParams& p,
                                       const std::optional<CurrentTask>& current) {
    if (!current) throw TaskNotFoundError(p.id);
    if (current->state == p.from && p.attempt && *p.attempt != current->attempt_count) {
        throw InvalidStateTransitionError(p.id, current->state, p.operation, current->attempt_count,
                                          *p.attempt);
    }
    throw InvalidStateTransitionError(p.id, current->state, p.operation, p.from);
}

// What the retry sweep does to one task it took (RETRYABLE, or PROCESSING with
// an expired lease): DISCARDED once its attempts are used, else PENDING after the
// backoff (or at `not_before_us`, if later). Updates `task` (state, last_error,
// schedule_at, updated_at) and returns where it came from.
struct RescueMove {
    TaskState from;
    bool lease_expired;        // record "visibility timeout expired" in the history
    std::int64_t schedule_us;  // the new schedule_at
};

// `stalls` (the task's expired leases so far) is counted up for an expired lease;
// at p.max_stalls the task is discarded as poison whatever attempts it has left.
inline RescueMove plan_rescue(Task& task, std::int64_t not_before_us, std::int64_t& stalls,
                              const TaskRescueParams& p) {
    RescueMove move{task.state, task.state == TaskState::PROCESSING,
                    seconds_to_us(task.schedule_at)};
    if (move.lease_expired) {
        task.last_error = "visibility timeout expired";
        ++stalls;
    }
    const std::int64_t limit = task.max_attempts > 0 ? task.max_attempts : p.max_attempts;
    if (move.lease_expired && stalls >= p.max_stalls) {
        task.state = TaskState::DISCARDED;
        task.last_error = "poison task: its lease expired " + std::to_string(stalls) +
                          " times (VOXQ_MAX_STALLS); its workers died or hung while running it";
    } else if (task.attempt_count >= limit) {
        task.state = TaskState::DISCARDED;
    } else {
        task.state = TaskState::PENDING;
        move.schedule_us = std::max(
            p.now_us + seconds_to_us(p.policy.delay_after(task.attempt_count)), not_before_us);
    }
    task.schedule_at = us_to_seconds(move.schedule_us);
    task.updated_at = us_to_seconds(p.now_us);
    return move;
}

// Listing: rows are fetched newest first with `id < list_start(cursor)`, one
// more than the page holds; the extra row only says there is a next page.
inline std::string list_start(const std::string& cursor) {
    return cursor.empty() ? std::string("~") : cursor;  // '~' sorts after every id character
}
inline TaskPage make_page(std::vector<Task> fetched, std::int64_t limit) {
    TaskPage page{std::move(fetched), {}};
    if (static_cast<std::int64_t>(page.tasks.size()) > limit) {
        page.tasks.pop_back();
        page.next_cursor = page.tasks.back().id;
    }
    return page;
}

// Purge: deletes chunk after chunk of each state (`delete_chunk(state)` returns
// how many it deleted) until a chunk comes back short. Returns the total.
template <typename DeleteChunk>
std::int64_t purge_in_chunks(const TaskPurgeParams& p, DeleteChunk&& delete_chunk) {
    std::int64_t total = 0;
    for (TaskState state : p.states) {
        for (;;) {
            const std::int64_t deleted = delete_chunk(state);
            total += deleted;
            if (deleted < p.chunk) break;
        }
    }
    return total;
}

// A numbered schema migration built into the binary. Never edit a released one.
struct Migration {
    int version;
    const char* sql;
};

// A token bucket as stored: its tokens at `updated_us`.
struct BucketLevel {
    double tokens = 0;
    std::int64_t updated_us = 0;
};

// What rate_take does: `wait_us` 0 and the buckets' levels after paying (in the
// order of params.buckets), or the wait until every bucket could pay and no
// levels (nothing is written). `stored[i]` is bucket i's row, if any: a bucket
// never seen is full. A cost beyond the burst (a text longer than a 24th of the
// characters per minute) is let through once the bucket is full, leaving a
// debt paid off before the next grant. Levels read from a file that was
// tampered with (NaN, above the burst) are brought back into range.
inline constexpr std::int64_t kRateStampSlackUs = 60'000'000;

struct RatePlan {
    std::int64_t wait_us = 0;
    std::vector<BucketLevel> after;
};

inline RatePlan plan_rate_take(const RateTakeParams& p,
                               const std::vector<std::optional<BucketLevel>>& stored) {
    RatePlan plan;
    for (std::size_t i = 0; i < p.buckets.size(); ++i) {
        const RateBucket& b = p.buckets[i];
        double tokens = b.burst;
        std::int64_t at = p.now_us;
        if (i < stored.size() && stored[i]) {
            const BucketLevel& level = *stored[i];
            // A clock behind the stored time refills nothing (no negative time).
            const double elapsed =
                static_cast<double>(std::max<std::int64_t>(0, p.now_us - level.updated_us)) / 1e6;
            tokens = std::isnan(level.tokens)
                         ? b.burst
                         : std::clamp(level.tokens + elapsed * b.rate, -1e15, b.burst);
            at = std::max(level.updated_us, p.now_us);
            // Stamped more than a minute ahead (an edit, a badly wrong clock): it
            // would refill nothing until then, so it restarts full at our time.
            // Small skews between workers keep the later stamp, as above.
            if (level.updated_us > p.now_us + kRateStampSlackUs) {
                tokens = b.burst;
                at = p.now_us;
            }
        }
        const double need = std::min(b.cost, b.burst);
        if (tokens < need) {
            const double wait = std::ceil((need - tokens) / b.rate * 1e6);
            plan.wait_us = std::max(plan.wait_us, static_cast<std::int64_t>(std::min(wait, 1e15)));
        }
        plan.after.push_back({tokens - b.cost, at});
    }
    if (plan.wait_us > 0) plan.after.clear();
    return plan;
}

}  // namespace voxq::detail
