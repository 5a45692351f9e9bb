// Task-count bookkeeping of the SQLite store: each write records how it moves
// tasks between (queue, state) cells, and the group commit adds them to the
// task_counts table in the same transaction, so stats never count rows.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "store/sqlite/connection.hpp"
#include "store/sqlite/sqlite_queries.hpp"
#include "voxq/task.hpp"

namespace voxq::sqlite {

// Count changes of one write, applied to task_counts before the group commits.
class CountDeltas {
  public:
    CountDeltas() = default;
    // `group`: the deltas of the writes before this one in the same transaction.
    explicit CountDeltas(const CountDeltas* group) : group_(group) {}

    void add(const std::string& queue, TaskState state, std::int64_t n) {
        deltas_[{queue, static_cast<int>(state)}] += n;
    }
    void move(const std::string& queue, TaskState from, TaskState to) {
        if (from == to) return;
        add(queue, from, -1);
        add(queue, to, +1);
    }
    void merge(const CountDeltas& other) {
        for (const auto& [key, n] : other.deltas_) deltas_[key] += n;
    }
    void flush(Connection& conn) {
        for (const auto& [key, n] : deltas_) {
            if (n == 0) continue;
            conn.prepare(sql::kAddCount)
                .bind(1, key.first)
                .bind(2, static_cast<std::int64_t>(key.second))
                .bind(3, n)
                .run();
        }
        deltas_.clear();
    }

    // Queues that gained tasks in `state` in this transaction so far (not yet in
    // task_counts, which is written at commit).
    void add_queues_gaining(TaskState state, std::set<std::string>& out) const {
        for (const auto& [key, n] : deltas_) {
            if (key.second == static_cast<int>(state) && n > 0) out.insert(key.first);
        }
        if (group_ != nullptr) group_->add_queues_gaining(state, out);
    }

  private:
    std::map<std::pair<std::string, int>, std::int64_t> deltas_;
    const CountDeltas* group_ = nullptr;
};

}  // namespace voxq::sqlite
