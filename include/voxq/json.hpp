// File: voxq/json.hpp
//
// Tasks and stats in JSON, with the field names of the data model (SPEC §10):
//   {"id", "state", "queue", "priority", "schedule_at",
//    "items": [{"request": {"text", "voice_id", "speed", "format"}, "response_url"}],
//    "attempt_count", "max_attempts", "last_error", "dedup_key", "created_at", "updated_at"}
// Used by the CLI (JSON Lines, --json) and the HTTP API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "voxq/task.hpp"

namespace voxq {

// One task as a JSON object. `with_history` adds "error_history" and "heartbeat_at".
[[nodiscard]] std::string task_to_json(const Task& task, bool with_history = false);

// Parses a task for enqueue. Every field but "items" may be left out; unknown
// fields and wrong types are refused. Throws ValidationError naming `index` and
// the field. Content rules (text length, URL, ...) are checked by enqueue.
[[nodiscard]] Task task_from_json(std::string_view json, std::size_t index = 0);

// A request body of tasks: one task object (`single`), an array of tasks, or
// {"tasks": [...]} with at least one and at most `max_tasks` tasks. Throws
// ValidationError naming the task and field.
struct TaskBody {
    std::vector<Task> tasks;
    bool single = false;
};
[[nodiscard]] TaskBody tasks_from_json_body(std::string_view body, std::size_t max_tasks);

// A page of tasks: {"tasks": [...], "next_cursor": "..." | null}.
[[nodiscard]] std::string task_page_to_json(const TaskPage& page);

// {"pending": n, ..., "total": n}.
[[nodiscard]] std::string stats_to_json(const std::map<std::string, std::int64_t>& stats);

}  // namespace voxq
