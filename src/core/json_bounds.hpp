// Bounds on untrusted JSON, checked before any value is built.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace voxq {

// Throws ValidationError unless `body` is JSON of at most `max_values` values
// nested at most `max_depth` deep. A linear SAX pass with no allocation; the
// messages start with `what` ("body") and a value-count problem ends with `hint`.
void check_json_bounds(const std::string& body, std::size_t max_values, std::size_t max_depth,
                       std::string_view what = "body", std::string_view hint = "");

}  // namespace voxq
