#include "voxq/errors.hpp"

#include <utility>

#include "voxq/task.hpp"

namespace voxq {

TaskNotFoundError::TaskNotFoundError(std::string task_id)
    : QueueError("task " + task_id + " not found"), task_id_(std::move(task_id)) {}

InvalidStateTransitionError::InvalidStateTransitionError(std::string task_id, TaskState current,
                                                         std::string operation, TaskState required)
    : QueueError("task " + task_id + " is " + std::string(to_string(current)) + "; " + operation +
                 " needs " + std::string(to_string(required))),
      task_id_(std::move(task_id)),
      current_(current),
      operation_(std::move(operation)) {}

InvalidStateTransitionError::InvalidStateTransitionError(std::string task_id, TaskState current,
                                                         std::string operation,
                                                         std::int64_t current_attempt,
                                                         std::int64_t given_attempt)
    : QueueError("task " + task_id + " is at attempt " + std::to_string(current_attempt) + "; " +
                 operation + " was given attempt " + std::to_string(given_attempt) +
                 " (its lease expired and the task was handed out again)"),
      task_id_(std::move(task_id)),
      current_(current),
      operation_(std::move(operation)) {}

DuplicateTaskError::DuplicateTaskError(std::string task_id)
    : QueueError("task " + task_id + " already exists"), task_id_(std::move(task_id)) {}

}  // namespace voxq
