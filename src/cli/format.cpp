#include "cli/format.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "util/text.hpp"
#include "util/time.hpp"
#include "voxq/errors.hpp"

namespace voxq::cli {

std::string iso_time(double unix_seconds) {
    if (unix_seconds <= 0) return "-";
    return detail::rfc3339_utc(unix_seconds);
}

double parse_duration(const std::string& text) {
    if (text.empty()) throw ValidationError("duration: empty");
    char unit = text.back();
    std::string number = text;
    double scale = 1;
    if (std::isalpha(static_cast<unsigned char>(unit))) {
        number.pop_back();
        switch (unit) {
            case 's':
                scale = 1;
                break;
            case 'm':
                scale = 60;
                break;
            case 'h':
                scale = 3600;
                break;
            case 'd':
                scale = 86400;
                break;
            case 'w':
                scale = 7 * 86400;
                break;
            default:
                throw ValidationError("duration '" + text + "': unit must be s, m, h, d or w");
        }
    }
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(number, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != number.size() || number.empty() || !std::isfinite(value) || value < 0) {
        throw ValidationError("duration '" + text + "' is not like 30s, 12h or 7d");
    }
    return value * scale;
}

std::string one_line(std::string s, std::size_t max) {
    for (char& c : s) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return truncate_utf8(escape_for_terminal(s), max);
}

void print_task_table(const std::vector<Task>& tasks) {
    std::printf("%-26s  %-10s  %-10s  %4s  %7s  %-24s  %s\n", "ID", "STATE", "QUEUE", "PRI",
                "ATTEMPT", "SCHEDULE_AT", "LAST_ERROR");
    for (const Task& t : tasks) {
        std::printf("%-26s  %-10s  %-10s  %4lld  %7lld  %-24s  %s\n", t.id.c_str(),
                    std::string(to_string(t.state)).c_str(), one_line(t.queue, 10).c_str(),
                    static_cast<long long>(t.priority), static_cast<long long>(t.attempt_count),
                    iso_time(t.schedule_at).c_str(), one_line(t.last_error, 60).c_str());
    }
}

}  // namespace voxq::cli
