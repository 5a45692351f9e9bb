#include "store/sqlite/reader_pool.hpp"

#include "voxq/errors.hpp"

namespace voxq::sqlite {

ReaderPool::Lease ReaderPool::borrow() {
    {
        std::lock_guard lock(mutex_);
        if (closed_) throw QueueError("the store is closed");
        if (!idle_.empty()) {
            std::unique_ptr<Connection> conn = std::move(idle_.back());
            idle_.pop_back();
            return {*this, std::move(conn)};
        }
    }
    return {*this, open_()};
}

void ReaderPool::give_back(std::unique_ptr<Connection> conn) {
    std::unique_ptr<Connection> closing;  // closed outside the lock
    std::lock_guard lock(mutex_);
    if (!closed_ && idle_.size() < max_idle_) {
        idle_.push_back(std::move(conn));
    } else {
        closing = std::move(conn);
    }
}

void ReaderPool::close() {
    std::vector<std::unique_ptr<Connection>> closing;
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
        closing.swap(idle_);
    }
}

}  // namespace voxq::sqlite
