// Input checks for enqueue. Each throws ValidationError naming the task index and
// field ("task 2: items[0].request.text: must not be empty").
#pragma once

#include <cstddef>
#include <string_view>

#include "voxq/config.hpp"
#include "voxq/task.hpp"

namespace voxq::detail {

inline constexpr std::size_t kMaxTaskIdLength = 128;
inline constexpr std::size_t kMaxQueueNameLength = 64;
inline constexpr std::size_t kMaxDedupKeyLength = 256;
inline constexpr std::size_t kMaxUrlLength = 2048;
inline constexpr std::size_t kMaxItemsPerTask = 1000;
inline constexpr std::size_t kMaxErrorLength = 4096;
inline constexpr double kMaxUnixTime = 253402300799.0;  // 9999-12-31T23:59:59Z

// True iff `id` is 1-128 characters of [A-Za-z0-9_.:-].
bool is_valid_task_id(std::string_view id);
// True iff `name` is 1-64 characters of [A-Za-z0-9_.:-].
bool is_valid_queue_name(std::string_view name);

// Checks one task as given to enqueue (before ids and times are filled in).
void validate_new_task(const Task& task, std::size_t index, const QueueConfig& config);

// Trims an error message to kMaxErrorLength bytes without splitting a UTF-8 sequence.
std::string bounded_error(std::string_view message);

}  // namespace voxq::detail
