// File: voxq/task.hpp
//
// The data model: a Task holds one or more TaskItems, each a speech request and
// the webhook its audio goes to. Names follow the user's guide
// (`Task(id="", state=TaskState.PENDING, schedule_at=0, items=[...], ...)`).
//
// Times are Unix seconds as doubles (fractions allowed); the stores keep them to
// the microsecond. Plain value types: copy and move freely; not synchronized.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace voxq {

// The six states. Persisted as these integers: never renumber or rename.
//
//   PENDING    waiting to be claimed; dequeue moves it to PROCESSING once due.
//   PROCESSING claimed by a worker that holds its lease; the worker completes,
//              retries or discards it, or the retry sweep reclaims it when the
//              lease (visibility timeout) expires.
//   COMPLETED  done. Terminal.
//   RETRYABLE  failed; the retry sweep moves it to PENDING with backoff, or to
//              DISCARDED once it has used its attempts.
//   CANCELLED  cancelled while PENDING. Terminal.
//   DISCARDED  parked: failed too often or discarded by a worker; an operator
//              can resume it (back to PENDING with fresh attempts).
enum class TaskState : std::uint8_t {
    PENDING = 0,
    PROCESSING = 1,
    COMPLETED = 2,
    RETRYABLE = 3,
    CANCELLED = 4,
    DISCARDED = 5,
};

inline constexpr TaskState kAllTaskStates[] = {
    TaskState::PENDING,   TaskState::PROCESSING, TaskState::COMPLETED,
    TaskState::RETRYABLE, TaskState::CANCELLED,  TaskState::DISCARDED,
};

// "PENDING", "PROCESSING", ...
[[nodiscard]] std::string_view to_string(TaskState state) noexcept;
// Accepts the name in any case; std::nullopt for anything else. The one parser
// of state names (CLI, HTTP, JSON, Python).
[[nodiscard]] std::optional<TaskState> parse_task_state(std::string_view name) noexcept;
// parse_task_state, or ValidationError "<field>: 'x' is not one of PENDING, ...".
[[nodiscard]] TaskState task_state_from(std::string_view name, std::string_view field);

// One speech request. `voice_id` is "engine.voice" (e.g. "kokoro.af_heart",
// "espeak.en-us").
struct TextToSpeechRequest {
    std::string text;            // non-empty UTF-8, at most QueueConfig::max_text_length bytes
    std::string voice_id;        // "engine.voice"
    double speed = 1.0;          // 0.25 .. 4.0
    std::string format = "wav";  // a name in audio_format_table() (voxq/audio_format.hpp)
};

struct TaskItem {
    TextToSpeechRequest request;
    std::string response_url;  // absolute http:// or https:// URL
};

// One entry of a task's bounded error history (newest last).
struct TaskError {
    std::int64_t attempt = 0;
    double at = 0;
    std::string message;
};

struct Task {
    // Empty on enqueue => a generated ULID. Otherwise 1-128 of [A-Za-z0-9_.:-].
    std::string id;
    TaskState state = TaskState::PENDING;
    // Not handed out before this Unix time; 0 on enqueue means now.
    double schedule_at = 0;
    std::vector<TaskItem> items;
    // 0 on enqueue means "set it now".
    double created_at = 0;
    double updated_at = 0;

    // How many times dequeue handed the task out. Also the fencing token: pass it
    // as `attempt` to mark_as_* so a worker whose lease expired cannot settle the
    // attempt somebody else now holds.
    std::int64_t attempt_count = 0;
    std::string last_error;

    // Beyond the guide.
    std::string queue = "default";
    std::int64_t priority = 0;      // higher is claimed first
    std::int64_t max_attempts = 0;  // 0 = the retry sweep's max_attempts
    std::string dedup_key;          // empty = none; see WorkerQueue::enqueue
    double heartbeat_at = 0;        // lease start / last heartbeat while PROCESSING
    // Items [0, items_delivered) have been delivered (SPEC §6): a retried or
    // resumed task carries on from the first item not delivered. A COMPLETED
    // task reads as all its items.
    std::int64_t items_delivered = 0;
    // Filled by WorkerQueue::get_task only: the last errors, oldest first.
    std::vector<TaskError> error_history;
};

// One page of a listing (WorkerQueue::list_tasks).
struct TaskPage {
    std::vector<Task> tasks;  // newest first (by id)
    std::string next_cursor;  // empty when this was the last page
};

}  // namespace voxq
