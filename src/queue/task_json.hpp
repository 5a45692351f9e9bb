// Task JSON inside voxq: the items column as every store keeps it (a JSON
// array), and parsing a task that is already a JSON value.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "voxq/task.hpp"

namespace voxq::detail {

std::string items_to_json(const std::vector<TaskItem>& items);
// task_from_json (voxq/json.hpp) on JSON already parsed, e.g. one element of a
// request body holding many tasks.
Task task_from_json_value(const nlohmann::json& value, std::size_t index);
// Throws StoreError if the stored text is not what items_to_json wrote.
std::vector<TaskItem> items_from_json(std::string_view json);

}  // namespace voxq::detail
