#include "util/time.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace voxq::detail {

std::string rfc3339_utc(double unix_seconds) {
    const auto whole = static_cast<std::time_t>(std::floor(unix_seconds));
    const int millis = std::clamp(
        static_cast<int>(std::lround((unix_seconds - static_cast<double>(whole)) * 1000)), 0, 999);
    std::tm tm{};
    gmtime_r(&whole, &tm);
    char out[96];  // room for any int the compiler imagines in each field
    std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    return out;
}

}  // namespace voxq::detail
