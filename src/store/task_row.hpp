// The items column as every store keeps it. PART OF THE PERSISTENT FORMAT ON
// DISK: a JSON array of {"request": {"text", "voice_id", "speed", "format"},
// "response_url"}. It is deliberately not the API's JSON codec (voxq/json.hpp),
// so that a change to the API's shape cannot change stored rows; change this
// only together with a migration that rewrites the column.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "voxq/task.hpp"

namespace voxq::detail {

[[nodiscard]] std::string items_to_row(const std::vector<TaskItem>& items);
// Throws StoreError (not retryable) if `row` is not what items_to_row wrote.
[[nodiscard]] std::vector<TaskItem> items_from_row(std::string_view row);

}  // namespace voxq::detail
