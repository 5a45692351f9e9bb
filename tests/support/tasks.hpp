// Small builders for test tasks.
#pragma once

#include <string>
#include <vector>

#include "voxq/task.hpp"

namespace voxq::testing {

inline Task make_task(const std::string& text = "Hello, world!", const std::string& id = "") {
    Task t;
    t.id = id;
    t.items.push_back(TaskItem{{text, "kokoro.af_heart"}, "https://hooks.example.com/cb"});
    return t;
}

inline std::vector<Task> make_tasks(std::size_t n, const std::string& prefix = "text ") {
    std::vector<Task> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.push_back(make_task(prefix + std::to_string(i)));
    return out;
}

}  // namespace voxq::testing
