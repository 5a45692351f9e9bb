// File: voxq/version.hpp
//
// voxq's version, and those of what it runs on, for start-up lines, the
// User-Agent of deliveries and benchmarks.
#pragma once

namespace voxq {

// voxq's own version ("0.1.0").
[[nodiscard]] const char* version() noexcept;

// The version of the SQLite library voxq runs on ("3.40.1"); implemented by
// the SQLite store.
[[nodiscard]] const char* sqlite_version() noexcept;

}  // namespace voxq
