// File: voxq/errors.hpp
//
// The error vocabulary of voxq. Every failure at the public API is one of these
// exceptions; all derive from QueueError, so `catch (const voxq::QueueError&)`
// catches everything voxq throws on purpose.
//
// A failed call changes nothing: every operation is one atomic write, so when it
// throws, the store is as it was before the call (StoreError::in_doubt() is the
// one exception and says so).
//
// Classified by what the caller should do (abseil's rule):
//   - TaskNotFoundError, InvalidStateTransitionError, DuplicateTaskError,
//     ValidationError, ConfigError: do not retry; the input or the task's state
//     must change first.
//   - StoreError: retryable() says whether repeating the same call may succeed
//     (locked database, lost connection); in_doubt() says whether the write may
//     have happened anyway (a commit whose outcome is unknown).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace voxq {

enum class TaskState : std::uint8_t;

// Base of every voxq error. Also thrown on use before initialize() or after close().
class QueueError : public std::runtime_error {
  public:
    explicit QueueError(const std::string& message) : std::runtime_error(message) {}
};

// No task has the given id.
class TaskNotFoundError : public QueueError {
  public:
    explicit TaskNotFoundError(std::string task_id);
    [[nodiscard]] const std::string& task_id() const noexcept { return task_id_; }

  private:
    std::string task_id_;
};

// The task exists but is not in the state the operation needs, or the caller's
// fencing `attempt` is not the task's current attempt.
class InvalidStateTransitionError : public QueueError {
  public:
    // `operation` is the verb the caller used ("complete", "cancel", ...);
    // `required` names the state it needs.
    InvalidStateTransitionError(std::string task_id, TaskState current, std::string operation,
                                TaskState required);
    // Fencing failure: the task is in the right state but at another attempt.
    InvalidStateTransitionError(std::string task_id, TaskState current, std::string operation,
                                std::int64_t current_attempt, std::int64_t given_attempt);

    [[nodiscard]] const std::string& task_id() const noexcept { return task_id_; }
    [[nodiscard]] TaskState current_state() const noexcept { return current_; }
    [[nodiscard]] const std::string& operation() const noexcept { return operation_; }

  private:
    std::string task_id_;
    TaskState current_;
    std::string operation_;
};

// A caller-supplied task id already exists. Nothing of the batch was stored.
class DuplicateTaskError : public QueueError {
  public:
    explicit DuplicateTaskError(std::string task_id);
    [[nodiscard]] const std::string& task_id() const noexcept { return task_id_; }

  private:
    std::string task_id_;
};

// Bad input: the message names the task index and field ("task 2: items[0].response_url: ...").
class ValidationError : public QueueError {
  public:
    explicit ValidationError(const std::string& message) : QueueError(message) {}
};

// A configuration value is malformed or out of range; the message names the
// variable and the value ("QUEUE_MAX_ATTEMPTS: 'abc' is not an integer").
class ConfigError : public QueueError {
  public:
    explicit ConfigError(const std::string& message) : QueueError(message) {}
};

// The database failed (locked past its timeout, disk full, I/O error, connection
// lost). The message carries the database's own text.
class StoreError : public QueueError {
  public:
    StoreError(const std::string& message, bool retryable, bool in_doubt = false)
        : QueueError(message), retryable_(retryable), in_doubt_(in_doubt) {}
    // Repeating the same call later may succeed.
    [[nodiscard]] bool retryable() const noexcept { return retryable_; }
    // The write may have been committed even though the call failed.
    [[nodiscard]] bool in_doubt() const noexcept { return in_doubt_; }

  private:
    bool retryable_;
    bool in_doubt_;
};

// Synthesis failed. permanent(): the request can never succeed as it is (an
// unknown voice, say); otherwise a retry may succeed (the engine crashed).
class SpeechError : public QueueError {
  public:
    SpeechError(const std::string& message, bool permanent)
        : QueueError(message), permanent_(permanent) {}
    [[nodiscard]] bool permanent() const noexcept { return permanent_; }

  private:
    bool permanent_;
};

}  // namespace voxq
