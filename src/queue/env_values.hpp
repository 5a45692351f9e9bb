// Reading numbers from environment variables, with errors that name the
// variable and the value (shared by the queue, engine and webhook settings).
#pragma once

#include <cstdint>
#include <string>

namespace voxq {

// 'value', for messages that quote what was given.
std::string quoted(const std::string& value);

// Throw ConfigError "NAME: 'value' is not an integer" / "... is not a number".
std::int64_t parse_integer(const std::string& name, const std::string& value);
double parse_number(const std::string& name, const std::string& value);

}  // namespace voxq
