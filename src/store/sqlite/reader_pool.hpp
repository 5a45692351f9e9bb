// The SQLite store's readers: connections of their own, so reads never wait for
// the writer (WAL gives each its snapshot). A read borrows one, and gives it
// back when done; at most `max_idle` are kept open between reads, the rest are
// closed. After close(), borrowing throws QueueError and returns are dropped.
//
// Thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "store/sqlite/connection.hpp"

namespace voxq::sqlite {

class ReaderPool {
  public:
    using Open = std::function<std::unique_ptr<Connection>()>;

    ReaderPool(Open open, std::size_t max_idle) : open_(std::move(open)), max_idle_(max_idle) {}
    ReaderPool(const ReaderPool&) = delete;
    ReaderPool& operator=(const ReaderPool&) = delete;

    // A borrowed connection, given back when the lease ends.
    class Lease {
      public:
        Lease(ReaderPool& pool, std::unique_ptr<Connection> conn)
            : pool_(pool), conn_(std::move(conn)) {}
        ~Lease() { pool_.give_back(std::move(conn_)); }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Connection& operator*() const { return *conn_; }
        Connection* operator->() const { return conn_.get(); }

      private:
        ReaderPool& pool_;
        std::unique_ptr<Connection> conn_;
    };

    // An idle connection, or a new one (opened outside the lock).
    [[nodiscard]] Lease borrow();
    void close();

  private:
    void give_back(std::unique_ptr<Connection> conn);

    const Open open_;
    const std::size_t max_idle_;
    std::mutex mutex_;
    bool closed_ = false;                            // guarded by mutex_
    std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mutex_
};

}  // namespace voxq::sqlite
