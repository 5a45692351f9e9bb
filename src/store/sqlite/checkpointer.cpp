#include "store/sqlite/checkpointer.hpp"

namespace voxq::sqlite {

Checkpointer::Checkpointer(std::unique_ptr<Connection> own, Connection& writer,
                           CheckpointThresholds thresholds)
    : own_(std::move(own)), thresholds_(thresholds) {
    // Replaces SQLite's auto-checkpoint, which is itself a wal_hook.
    sqlite3_wal_hook(writer.handle(), &Checkpointer::on_commit, this);
    thread_ = std::thread([this] { run(); });
}

Checkpointer::~Checkpointer() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

// Called by SQLite after each commit on the writer, the write lock released.
int Checkpointer::on_commit(void* self, sqlite3* db, const char* schema, int pages) {
    auto* c = static_cast<Checkpointer*>(self);
    if (pages >= c->thresholds_.inline_pages) {
        // Behind: as SQLite's own hook would. A busy log is left for later.
        (void)sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    } else if (pages >= c->thresholds_.wake_pages && !c->due_.exchange(true)) {
        // The lock orders this with the thread's check, so no wake-up is lost.
        { std::lock_guard lock(c->mutex_); }
        c->wake_.notify_one();
    }
    return SQLITE_OK;
}

void Checkpointer::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || due_.load(); });
        if (stopping_) return;
        due_ = false;
        lock.unlock();
        // PASSIVE: copies what no reader still needs, never waits for a lock;
        // what it cannot copy now, the next wake-up will.
        (void)sqlite3_wal_checkpoint_v2(own_->handle(), "main", SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                        nullptr);
        lock.lock();
    }
}

}  // namespace voxq::sqlite
