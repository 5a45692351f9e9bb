// The PostgreSQL store's connection pool: at most `size` connections, each
// with the counter shard it writes to; a connection that broke is dropped, so
// the next call reconnects. close() waits for the connections in use, then
// drops them all; calls after it throw QueueError.
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "store/postgres/pg_connection.hpp"

namespace voxq::pg {

class PgPool {
  public:
    PgPool(PgTarget target, std::size_t size, int shards)
        : target_(std::move(target)), size_(size), shards_(shards) {}
    PgPool(const PgPool&) = delete;
    PgPool& operator=(const PgPool&) = delete;

    // Runs fn(connection, shard) on a pooled connection, waiting for one if all
    // `size` are in use.
    template <typename F>
    auto with_conn(F&& fn) -> decltype(fn(std::declval<PgConnection&>(), 0)) {
        Pooled pooled = acquire();
        struct GiveBack {
            PgPool* self;
            Pooled& pooled;
            ~GiveBack() { self->release(std::move(pooled)); }
        } give_back{this, pooled};
        return fn(*pooled.conn, pooled.shard);
    }

    void close();
    [[nodiscard]] bool closed();

  private:
    struct Pooled {
        std::unique_ptr<PgConnection> conn;
        int shard;
    };
    Pooled acquire();
    void release(Pooled&& p);

    const PgTarget target_;
    const std::size_t size_;
    const int shards_;

    std::mutex mutex_;
    std::condition_variable returned_;
    std::vector<Pooled> idle_;  // guarded by mutex_
    std::size_t in_use_ = 0;    // guarded by mutex_
    int next_shard_ = 0;        // guarded by mutex_
    bool closed_ = false;       // guarded by mutex_
};

}  // namespace voxq::pg
