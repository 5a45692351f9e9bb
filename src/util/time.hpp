// Time as voxq stores it: int64 microseconds since the Unix epoch, converted
// from and to the double seconds of the public API in one place.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

namespace voxq::detail {

inline std::int64_t seconds_to_us(double seconds) {
    return static_cast<std::int64_t>(std::llround(seconds * 1e6));
}
inline double us_to_seconds(std::int64_t us) {
    return static_cast<double>(us) / 1e6;
}

// "2026-11-30T18:46:43.123Z" (RFC 3339, UTC, milliseconds).
[[nodiscard]] std::string rfc3339_utc(double unix_seconds);

}  // namespace voxq::detail
