// Group acknowledgement for the PostgreSQL store: when more completions arrive
// than `groups_in_flight` statements can carry at once, the ones that queue up
// are completed by ONE statement, run by the first caller in line (the leader)
// while the others wait. Without contention a completion runs alone, which is
// quicker than a group of one. This file is the batching; the statements are
// the store's (`run_alone`, `run_group`).
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "voxq/store.hpp"

namespace voxq::pg {

class CompletionGroups {
  public:
    // One completion in a group: `run_group` sets `result` for each task its
    // statement completed, or `error` for every one when the statement failed.
    struct Completion {
        const TaskSetStateParams* params = nullptr;
        std::optional<TaskStateChange> result;
        std::exception_ptr error;
    };
    using RunAlone = std::function<TaskStateChange(const TaskSetStateParams&)>;
    using RunGroup = std::function<void(const std::vector<Completion*>&)>;

    CompletionGroups(int groups_in_flight, RunAlone run_alone, RunGroup run_group);

    // Completes `p` (a plain PROCESSING -> COMPLETED) alone or within a group.
    // nullopt when its group did not complete it (wrong state, stale attempt, the
    // same id twice in a group): the caller then runs it alone, which completes
    // it or throws the precise error. Throws what the group's statement threw.
    std::optional<TaskStateChange> complete(const TaskSetStateParams& p);

  private:
    struct Waiter : Completion {
        bool done = false;  // guarded by mutex_
        std::condition_variable wake;
    };
    void wake_next();  // REQUIRES: mutex_ held

    const int groups_in_flight_limit_;
    const RunAlone run_alone_;
    const RunGroup run_group_;
    std::mutex mutex_;
    std::deque<Waiter*> queued_;  // guarded by mutex_
    int groups_in_flight_ = 0;    // guarded by mutex_
    int solo_in_flight_ = 0;      // guarded by mutex_
};

}  // namespace voxq::pg
