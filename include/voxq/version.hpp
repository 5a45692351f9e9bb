// File: voxq/version.hpp
//
// Versions of what voxq runs on, for start-up lines and benchmarks.
#pragma once

namespace voxq {

// The version of the SQLite library voxq runs on ("3.40.1").
[[nodiscard]] const char* sqlite_version() noexcept;

}  // namespace voxq
