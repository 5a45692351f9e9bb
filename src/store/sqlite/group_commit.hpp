// The SQLite store's write path: leader/follower group commit (leveldb's
// DBImpl::Write). SQLite has one writer; every write of the process goes
// through one connection, and the writes queued together commit in one
// transaction (each in its own savepoint) with one sync.
//
// Thread-safe. close() lets queued writes finish and refuses new ones.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "store/sqlite/connection.hpp"
#include "store/sqlite/count_deltas.hpp"

namespace voxq::sqlite {

class GroupCommit {
  public:
    using WriteFn = std::function<void(Connection&, CountDeltas&)>;

    explicit GroupCommit(std::unique_ptr<Connection> writer) : writer_conn_(std::move(writer)) {}
    GroupCommit(const GroupCommit&) = delete;
    GroupCommit& operator=(const GroupCommit&) = delete;
    ~GroupCommit() { close(); }

    // Runs `fn` in a group transaction and returns once that group committed;
    // throws what `fn` threw, or StoreError when the group failed as a whole,
    // or QueueError once closed.
    void write(WriteFn fn);
    // Waits for the queued writes, then closes the connection. Idempotent.
    void close();

  private:
    // A write, run by the group's leader inside the group transaction. The leader
    // fills `error` (or leaves it empty), then sets `done` (release). The exception
    // object moves to the caller whole: the leader keeps no reference to it, so it
    // is created in one thread and destroyed in the other, never both.
    struct WriteOp {
        std::function<void(Connection&, CountDeltas&)> fn;
        std::exception_ptr error;          // written by the leader before `done`
        std::atomic<bool> done = false;    // the outcome is in `error`
        std::atomic<bool> leader = false;  // promoted: run the next group
        bool sleeping = false;             // guarded by the store's mutex_
        std::condition_variable wake;      // signalled for done/leader if sleeping
    };

    void wait_done_or_leader(WriteOp& op);
    void lead(WriteOp& op);
    std::vector<std::exception_ptr> run_group(const std::vector<WriteOp*>& group);

    std::unique_ptr<Connection> writer_conn_;  // used by the current leader only
    std::mutex mutex_;
    std::condition_variable idle_;        // signalled when pending_ empties (for close)
    std::deque<WriteOp*> pending_;        // guarded by mutex_
    std::atomic<bool> stopping_ = false;  // set under mutex_
};

}  // namespace voxq::sqlite
