// Time as voxq stores it: int64 microseconds since the Unix epoch, converted
// from and to the double seconds of the public API in one place.
#pragma once

#include <cmath>
#include <cstdint>

namespace voxq::detail {

inline std::int64_t seconds_to_us(double seconds) {
    return static_cast<std::int64_t>(std::llround(seconds * 1e6));
}
inline double us_to_seconds(std::int64_t us) {
    return static_cast<double>(us) / 1e6;
}

}  // namespace voxq::detail
