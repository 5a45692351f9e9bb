#include "store/postgres/pg_completion_groups.hpp"

#include <algorithm>
#include <utility>

namespace voxq::pg {

namespace {
constexpr std::size_t kMaxGroup = 1000;  // tasks per statement
}  // namespace

CompletionGroups::CompletionGroups(int groups_in_flight, RunAlone run_alone, RunGroup run_group)
    : groups_in_flight_limit_(groups_in_flight),
      run_alone_(std::move(run_alone)),
      run_group_(std::move(run_group)) {}

void CompletionGroups::wake_next() {
    if (!queued_.empty()) queued_.front()->wake.notify_one();
}

std::optional<TaskStateChange> CompletionGroups::complete(const TaskSetStateParams& p) {
    Waiter me;
    me.params = &p;
    std::unique_lock lock(mutex_);
    if (queued_.empty() && groups_in_flight_ + solo_in_flight_ < groups_in_flight_limit_) {
        // No contention: the single-task statement is quicker than a group of one.
        ++solo_in_flight_;
        lock.unlock();
        struct Done {
            CompletionGroups* self;
            ~Done() {
                std::lock_guard relock(self->mutex_);
                --self->solo_in_flight_;
                self->wake_next();
            }
        } done{this};
        return run_alone_(p);
    }
    queued_.push_back(&me);
    // Up to the limit, groups run at once: with few callers each runs at once
    // (PostgreSQL merges their commits' WAL flushes anyway); with many, the ones
    // queued behind busy groups form the next group.
    auto can_lead = [&] {
        return !queued_.empty() && queued_.front() == &me &&
               groups_in_flight_ + solo_in_flight_ < groups_in_flight_limit_;
    };
    me.wake.wait(lock, [&] { return me.done || can_lead(); });
    if (!me.done) {
        const std::size_t n = std::min(queued_.size(), kMaxGroup);
        const std::vector<Waiter*> waiters(queued_.begin(), queued_.begin() + static_cast<long>(n));
        queued_.erase(queued_.begin(), queued_.begin() + static_cast<long>(n));
        ++groups_in_flight_;
        wake_next();
        lock.unlock();
        run_group_(std::vector<Completion*>(waiters.begin(), waiters.end()));
        lock.lock();
        --groups_in_flight_;
        for (Waiter* w : waiters) {
            w->done = true;
            if (w != &me) w->wake.notify_one();
        }
        wake_next();
    }
    lock.unlock();
    if (me.error) std::rethrow_exception(me.error);
    return me.result;
}

}  // namespace voxq::pg
