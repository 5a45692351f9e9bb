// The one reader of settings from the environment: typed accessors whose errors
// name the variable and quote the value ("NAME: 'abc' is not an integer",
// "NAME: '0' must be 1..1024"). Every area reads its VOXQ_* and QUEUE_*
// variables through it, from the process environment or, in tests and the
// Python binding, from a map.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace voxq::env {

// 'value', for messages that quote what was given.
[[nodiscard]] std::string quoted(std::string_view value);

// The whole string as a number, or ConfigError "NAME: 'value' is not an
// integer" / "... is not a number" (NaN and infinities are not numbers).
[[nodiscard]] std::int64_t parse_integer(std::string_view name, std::string_view value);
[[nodiscard]] double parse_number(std::string_view name, std::string_view value);

// Bounds of a number setting. `above_min`: the minimum itself is refused.
struct Range {
    double min = 0;
    std::optional<double> max;
    bool above_min = false;
    const char* note = "";  // appended to the range in messages, e.g. " seconds"
};

class Reader {
  public:
    // The process environment, read once now.
    Reader();
    // These values only (tests, the Python binding).
    explicit Reader(std::map<std::string, std::string> values);

    // The variable's value; set to "" counts as set.
    [[nodiscard]] std::optional<std::string> text(std::string_view name) const;
    // Unset: nullopt. Set: in [min, max], else ConfigError naming the variable.
    [[nodiscard]] std::optional<std::int64_t> integer(std::string_view name, std::int64_t min,
                                                      std::int64_t max) const;
    [[nodiscard]] std::optional<double> number(std::string_view name, const Range& range) const;
    // Words separated by spaces or commas, empty ones dropped.
    [[nodiscard]] std::vector<std::string> list(std::string_view name) const;
    // Every variable whose name starts with `prefix`.
    [[nodiscard]] std::map<std::string, std::string> with_prefix(std::string_view prefix) const;

  private:
    std::map<std::string, std::string, std::less<>> values_;
};

// "must be 1..1024", "must be > 0", "must be >= 16", for `range`.
[[nodiscard]] std::string describe(const Range& range);

}  // namespace voxq::env
