// How the command line reads and shows values: durations in, times, task
// tables and terminal-safe lines out (every string from the database passes
// through one_line before it reaches a terminal).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "voxq/task.hpp"

namespace voxq::cli {

// "2026-11-30T15:04:05.123Z"; "-" for 0.
std::string iso_time(double unix_seconds);
// "30s", "12h", "7d", "90m", "45" (seconds); ValidationError otherwise.
double parse_duration(const std::string& text);
// For a terminal: one line, control characters (ESC included) escaped, valid
// UTF-8, at most `max` bytes.
std::string one_line(std::string s, std::size_t max);
void print_task_table(const std::vector<Task>& tasks);

}  // namespace voxq::cli
