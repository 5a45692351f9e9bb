#include "voxq/task.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

#include "voxq/clock.hpp"

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
    std::string upper(name);
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    for (TaskState s : kAllTaskStates) {
        if (to_string(s) == upper) return s;
    }
    return std::nullopt;
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
