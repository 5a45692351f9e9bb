// Moves the write-ahead log's pages back into the database file on a thread of
// its own. SQLite's auto-checkpoint runs inside the commit that takes the log
// past 1,000 pages, so the writer stops for it (15% of W1's enqueue time,
// perf record on voxq_bench); here that commit only wakes this thread, which
// checkpoints on its own connection while the writer goes on (WAL allows both).
// Should it fall behind (a reader holding an old snapshot, a slow disk) until
// the log passes `inline_pages`, the writer checkpoints inline as SQLite would,
// so the log stays bounded either way.
//
// Thread-safe. Attach to the writer before its first write; destroy after the
// writer's connection is closed.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "store/sqlite/connection.hpp"

namespace voxq::sqlite {

// Log sizes, in pages, after a commit on the writer.
struct CheckpointThresholds {
    int wake_pages = 1000;    // SQLite's own auto-checkpoint threshold
    int inline_pages = 8000;  // ~32 MB of log at 4 KiB pages
};

class Checkpointer {
  public:
    // Checkpoints on `own` (a connection of its own to the same file) whenever
    // a commit on `writer` leaves `wake_pages` or more in the log.
    Checkpointer(std::unique_ptr<Connection> own, Connection& writer,
                 CheckpointThresholds thresholds = {});
    Checkpointer(const Checkpointer&) = delete;
    Checkpointer& operator=(const Checkpointer&) = delete;
    ~Checkpointer();

  private:
    static int on_commit(void* self, sqlite3* db, const char* schema, int pages);
    void run();

    std::unique_ptr<Connection> own_;
    const CheckpointThresholds thresholds_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;          // guarded by mutex_
    std::atomic<bool> due_ = false;  // a checkpoint is asked for
    std::thread thread_;
};

}  // namespace voxq::sqlite
