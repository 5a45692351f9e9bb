#include "voxq/task.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

#include "util/text.hpp"
#include "voxq/clock.hpp"
#include "voxq/errors.hpp"

namespace voxq {

std::string_view to_string(TaskState state) noexcept {
    switch (state) {
        case TaskState::PENDING:
            return "PENDING";
        case TaskState::PROCESSING:
            return "PROCESSING";
        case TaskState::COMPLETED:
            return "COMPLETED";
        case TaskState::RETRYABLE:
            return "RETRYABLE";
        case TaskState::CANCELLED:
            return "CANCELLED";
        case TaskState::DISCARDED:
            return "DISCARDED";
    }
    return "UNKNOWN";
}

std::optional<TaskState> parse_task_state(std::string_view name) noexcept {
    for (TaskState s : kAllTaskStates) {
        const std::string_view candidate = to_string(s);
        if (candidate.size() == name.size() &&
            std::equal(candidate.begin(), candidate.end(), name.begin(), [](char a, char b) {
                return a == std::toupper(static_cast<unsigned char>(b));
            })) {
            return s;
        }
    }
    return std::nullopt;
}

TaskState task_state_from(std::string_view name, std::string_view field) {
    if (const auto state = parse_task_state(name)) return *state;
    std::string names;
    for (TaskState s : kAllTaskStates) {
        if (!names.empty()) names += ", ";
        names += to_string(s);
    }
    throw ValidationError(std::string(field) + ": '" + truncate_utf8(std::string(name), 32) +
                          "' is not one of " + names);
}

std::int64_t SystemClock::now_us() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::shared_ptr<Clock> SystemClock::instance() {
    static const std::shared_ptr<Clock> clock = std::make_shared<SystemClock>();
    return clock;
}

}  // namespace voxq
