// What `Store::check` looks for in every store, written once: the rules a task
// row keeps whatever the database, the counters against the rows, the schema
// version. Each store adds its database's own integrity check.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "voxq/store.hpp"
#include "voxq/task.hpp"

namespace voxq::detail {

// A rule every task row keeps, as a query that counts the rows breaking it and
// names one of them (the same SQL on SQLite and PostgreSQL).
struct StateRule {
    const char* broken;  // what a breaking row is, for the finding
    const char* sql;     // SELECT count, one id
};

#define VOXQ_RULE(broken, where) \
    { broken, "SELECT count(*), min(id) FROM tasks WHERE " where }
inline constexpr StateRule kStateRules[] = {
    VOXQ_RULE("a state that is none of the six", "state NOT BETWEEN 0 AND 5"),
    VOXQ_RULE("PROCESSING without a lease (heartbeat_at unset)", "state = 1 AND heartbeat_at <= 0"),
    VOXQ_RULE("PROCESSING without an attempt", "state = 1 AND attempt_count < 1"),
    VOXQ_RULE("a negative attempt_count", "attempt_count < 0"),
    VOXQ_RULE("a negative max_attempts", "max_attempts < 0"),
    VOXQ_RULE("a negative items_delivered", "items_delivered < 0"),
    VOXQ_RULE("no items", "items = '[]' OR items = ''"),
    VOXQ_RULE("updated before it was created", "updated_at < created_at"),
};
#undef VOXQ_RULE

// Rows of task_errors whose task is gone (a purge deletes both together).
inline constexpr const char* kOrphanErrorsSql =
    "SELECT count(*), min(task_id) FROM task_errors e WHERE NOT EXISTS "
    "(SELECT 1 FROM tasks t WHERE t.id = e.task_id)";

inline constexpr const char* kRowCountsSql =
    "SELECT queue, state, count(*) FROM tasks GROUP BY queue, state";
inline constexpr const char* kCounterSumsSql =
    "SELECT queue, state, sum(n) FROM task_counts GROUP BY queue, state";

// The finding for `count` rows breaking `rule` (none when count is 0).
inline void add_rule_finding(std::vector<StoreFinding>& out, const char* broken, std::int64_t count,
                             const std::string& example_id) {
    if (count == 0) return;
    out.push_back(
        {"state", std::to_string(count) + " task(s) with " + broken + ", e.g. " + example_id});
}

// (queue, state) -> count.
using CountsByQueueState = std::map<std::pair<std::string, std::int64_t>, std::int64_t>;

// One finding per (queue, state) whose counter disagrees with its rows.
inline void compare_counters(const CountsByQueueState& rows, const CountsByQueueState& counters,
                             std::vector<StoreFinding>& out) {
    auto name = [](std::int64_t state) {
        return state >= 0 && state < static_cast<std::int64_t>(std::size(kAllTaskStates))
                   ? std::string(to_string(static_cast<TaskState>(state)))
                   : "state " + std::to_string(state);
    };
    std::map<std::pair<std::string, std::int64_t>, std::pair<std::int64_t, std::int64_t>> both;
    for (const auto& [key, n] : rows) both[key].first = n;
    for (const auto& [key, n] : counters) both[key].second = n;
    for (const auto& [key, n] : both) {
        if (n.first == n.second) continue;
        out.push_back({"counters", "queue \"" + key.first + "\" " + name(key.second) +
                                       ": the counter says " + std::to_string(n.second) +
                                       ", the rows are " + std::to_string(n.first)});
    }
}

// The finding when the schema is not the one this build writes.
inline void check_schema_version(std::int64_t version, std::int64_t latest,
                                 std::vector<StoreFinding>& out) {
    if (version == latest) return;
    out.push_back({"schema", version < latest
                                 ? "schema version " + std::to_string(version) +
                                       ", this voxq uses " + std::to_string(latest) +
                                       ": run `voxq migrate`"
                                 : "schema version " + std::to_string(version) +
                                       " was written by a newer voxq (this one knows up to " +
                                       std::to_string(latest) + ")"});
}

}  // namespace voxq::detail
