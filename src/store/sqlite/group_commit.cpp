#include "store/sqlite/group_commit.hpp"

#include <algorithm>
#include <string>
#include <thread>

#include "voxq/errors.hpp"

namespace voxq::sqlite {

namespace {

constexpr std::size_t kMaxGroup = 512;  // writes per group transaction
constexpr int kSpinsBeforeSleep = 200;  // yields while waiting for a group commit

}  // namespace

// Runs `fn` in a group transaction and returns once that group committed.
//
// Leader/follower group commit (leveldb's DBImpl::Write): writes queue up in
// pending_; the write at the front is the leader. The leader takes every write
// queued so far, runs them in one transaction on its own thread, hands the
// others their outcome, and makes the next queued write the leader. Followers
// sleep on their own condition variable until done or promoted, so a commit
// wakes exactly the threads it concerns.
void GroupCommit::write(WriteFn fn) {
    WriteOp op;
    op.fn = std::move(fn);
    {
        std::lock_guard lock(mutex_);
        if (stopping_) throw QueueError("the store is closed");
        pending_.push_back(&op);
        if (pending_.size() == 1) op.leader = true;
    }
    wait_done_or_leader(op);
    if (!op.done.load(std::memory_order_acquire)) lead(op);
    if (op.error) std::rethrow_exception(std::move(op.error));
}

// A group commit takes tens of microseconds, about what waking a sleeping
// thread costs: so spin (yielding the CPU) for a short while first, then sleep.
void GroupCommit::wait_done_or_leader(WriteOp& op) {
    auto settled = [&] {
        return op.done.load(std::memory_order_acquire) || op.leader.load(std::memory_order_acquire);
    };
    for (int i = 0; i < kSpinsBeforeSleep; ++i) {
        if (settled()) return;
        std::this_thread::yield();
    }
    std::unique_lock lock(mutex_);
    op.sleeping = true;
    op.wake.wait(lock, settled);
    op.sleeping = false;
}

// Runs every write queued so far (this one first) as one group, hands each its
// outcome, and promotes the next queued write to leader.
void GroupCommit::lead(WriteOp& op) {
    std::vector<WriteOp*> group;
    {
        std::lock_guard lock(mutex_);
        const std::size_t n = std::min(pending_.size(), kMaxGroup);
        group.assign(pending_.begin(), pending_.begin() + static_cast<long>(n));
    }
    std::vector<std::exception_ptr> errors = run_group(group);
    // Under the mutex, `sleeping` is read BEFORE `done`/`leader` is set: once
    // either is set, a waiter that was not sleeping may return and its
    // WriteOp (on its stack) is gone. A sleeping waiter cannot leave wait()
    // before this mutex is released, so notifying it here is safe.
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < group.size(); ++i) {
        WriteOp* w = group[i];
        pending_.pop_front();
        const bool sleeping = w != &op && w->sleeping;
        w->error = std::move(errors[i]);
        w->done.store(true, std::memory_order_release);
        if (sleeping) w->wake.notify_one();
    }
    if (!pending_.empty()) {
        WriteOp* next = pending_.front();
        const bool sleeping = next->sleeping;
        next->leader.store(true, std::memory_order_release);
        if (sleeping) next->wake.notify_one();
    } else {
        idle_.notify_all();
    }
}

void GroupCommit::close() {
    std::unique_lock lock(mutex_);
    if (stopping_) return;
    stopping_ = true;  // no new writes from here on
    // Let the writes already queued finish.
    idle_.wait(lock, [&] { return pending_.empty(); });
    writer_conn_.reset();
}

// Runs a group of writes in one transaction; each write in its own savepoint
// so one failing write leaves the others intact.
//
// Each caller gets its own exception object (moved, never shared with this
// thread), so no exception is destroyed here while its caller reads it.
std::vector<std::exception_ptr> GroupCommit::run_group(const std::vector<WriteOp*>& group) {
    Connection& c = *writer_conn_;
    std::vector<std::exception_ptr> errors(group.size());
    // Fails every write of the group with its own copy of `cause`.
    auto fail_all = [&](const std::string& context, const std::exception_ptr& cause,
                        bool in_doubt) {
        std::string message = "store failed";
        bool retryable = false;
        bool damaged = false;
        try {
            std::rethrow_exception(cause);
        } catch (const DatabaseDamaged& e) {
            message = e.what();
            damaged = true;
        } catch (const StoreError& e) {
            message = e.what();
            retryable = e.retryable();
        } catch (const std::exception& e) {
            message = e.what();
        }
        for (std::size_t i = 0; i < group.size(); ++i) {
            // A write that failed on its own was rolled back already: keep its error.
            if (errors[i]) continue;
            // Damage keeps its type: the store stops writing when it sees one.
            errors[i] =
                damaged
                    ? std::make_exception_ptr(DatabaseDamaged(context + message, false))
                    : std::make_exception_ptr(StoreError(context + message, retryable, in_doubt));
        }
    };
    try {
        c.prepare("BEGIN IMMEDIATE").run();
    } catch (...) {
        fail_all("", std::current_exception(), false);
        return errors;
    }
    CountDeltas total;
    // A lone write needs no savepoint: if it fails, the transaction is rolled
    // back whole below (nothing else is in it).
    const bool savepoints = group.size() > 1;
    for (std::size_t i = 0; i < group.size(); ++i) {
        CountDeltas local(&total);
        try {
            if (savepoints) c.prepare("SAVEPOINT w").run();
            group[i]->fn(c, local);
            c.reset_statements();
            if (savepoints) c.prepare("RELEASE w").run();
            total.merge(local);
        } catch (...) {
            c.reset_statements();
            if (sqlite3_get_autocommit(c.handle()) != 0) {
                // SQLite rolled the whole transaction back (I/O error, disk
                // full): every write of the group is lost; fail them all.
                fail_all("transaction rolled back: ", std::current_exception(), false);
                return errors;
            }
            errors[i] = std::current_exception();
            if (!savepoints) {
                sqlite3_exec(c.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
                return errors;
            }
            sqlite3_exec(c.handle(), "ROLLBACK TO w; RELEASE w", nullptr, nullptr, nullptr);
        }
    }
    try {
        total.flush(c);
        c.reset_statements();
        c.prepare("COMMIT").run();
    } catch (...) {
        const bool in_doubt = (sqlite3_extended_errcode(c.handle()) & 0xFF) == SQLITE_IOERR;
        sqlite3_exec(c.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
        fail_all("commit: ", std::current_exception(), in_doubt);
        return errors;
    }
    return errors;
}

}  // namespace voxq::sqlite
