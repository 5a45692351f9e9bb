// The items column: a task's items as stored by every store (JSON array).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "voxq/task.hpp"

namespace voxq::detail {

std::string items_to_json(const std::vector<TaskItem>& items);
// Throws StoreError if the stored text is not what items_to_json wrote.
std::vector<TaskItem> items_from_json(std::string_view json);

}  // namespace voxq::detail
