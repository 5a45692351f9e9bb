#include "store/postgres/pg_pool.hpp"

#include "voxq/errors.hpp"

namespace voxq::pg {

PgPool::Pooled PgPool::acquire() {
    std::unique_lock lock(mutex_);
    returned_.wait(lock, [&] { return closed_ || !idle_.empty() || in_use_ < size_; });
    if (closed_) throw QueueError("the store is closed");
    ++in_use_;
    if (!idle_.empty()) {
        Pooled p = std::move(idle_.back());
        idle_.pop_back();
        return p;
    }
    const int shard = next_shard_++ % shards_;
    lock.unlock();
    try {
        return Pooled{std::make_unique<PgConnection>(target_), shard};
    } catch (...) {
        std::lock_guard relock(mutex_);
        --in_use_;
        returned_.notify_one();
        throw;
    }
}

void PgPool::release(Pooled&& p) {
    std::lock_guard lock(mutex_);
    --in_use_;
    if (!closed_ && p.conn && p.conn->healthy()) idle_.push_back(std::move(p));
    returned_.notify_all();
}

void PgPool::close() {
    std::unique_lock lock(mutex_);
    closed_ = true;
    // Wait for connections in use, then drop all.
    returned_.wait(lock, [&] { return in_use_ == 0; });
    idle_.clear();
}

bool PgPool::closed() {
    std::lock_guard lock(mutex_);
    return closed_;
}

}  // namespace voxq::pg
