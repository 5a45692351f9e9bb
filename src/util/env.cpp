#include "util/env.hpp"

#include <charconv>
#include <cmath>

#include "util/text.hpp"
#include "voxq/errors.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, not in a header

namespace voxq::env {

std::string quoted(std::string_view value) {
    std::string out = "'";
    out += value;
    out += '\'';
    return out;
}

std::int64_t parse_integer(std::string_view name, std::string_view value) {
    std::int64_t out = 0;
    const char* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, out);
    if (value.empty() || ec != std::errc() || ptr != end) {
        throw ConfigError(std::string(name) + ": " + quoted(value) + " is not an integer");
    }
    return out;
}

double parse_number(std::string_view name, std::string_view value) {
    double out = 0;
    const char* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, out);
    if (value.empty() || ec != std::errc() || ptr != end || !std::isfinite(out)) {
        throw ConfigError(std::string(name) + ": " + quoted(value) + " is not a number");
    }
    return out;
}

std::string describe(const Range& range) {
    std::string out = "must be ";
    if (range.above_min) {
        out += "> " + format_number(range.min);
        if (range.max) out += " and <= " + format_number(*range.max);
    } else if (range.max) {
        out += format_number(range.min) + ".." + format_number(*range.max);
    } else {
        out += ">= " + format_number(range.min);
    }
    return out + range.note;
}

Reader::Reader() {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry = *e;
        const std::size_t eq = entry.find('=');
        if (eq != std::string_view::npos) {
            values_.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
        }
    }
}

Reader::Reader(std::map<std::string, std::string> values) : values_(values.begin(), values.end()) {}

std::optional<std::string> Reader::text(std::string_view name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
}

std::optional<std::int64_t> Reader::integer(std::string_view name, std::int64_t min,
                                            std::int64_t max) const {
    const auto raw = text(name);
    if (!raw) return std::nullopt;
    const std::int64_t v = parse_integer(name, *raw);
    if (v < min || v > max) {
        throw ConfigError(std::string(name) + ": " + quoted(*raw) + " " +
                          describe({static_cast<double>(min), static_cast<double>(max)}));
    }
    return v;
}

std::optional<double> Reader::number(std::string_view name, const Range& range) const {
    const auto raw = text(name);
    if (!raw) return std::nullopt;
    const double v = parse_number(name, *raw);
    const bool low = range.above_min ? !(v > range.min) : !(v >= range.min);
    if (low || (range.max && v > *range.max)) {
        throw ConfigError(std::string(name) + ": " + quoted(*raw) + " " + describe(range));
    }
    return v;
}

std::vector<std::string> Reader::list(std::string_view name) const {
    std::vector<std::string> out;
    const auto raw = text(name);
    if (!raw) return out;
    std::string word;
    for (const char c : *raw + " ") {
        if (c == ' ' || c == ',') {
            if (!word.empty()) out.push_back(std::move(word));
            word.clear();
        } else {
            word += c;
        }
    }
    return out;
}

std::map<std::string, std::string> Reader::with_prefix(std::string_view prefix) const {
    std::map<std::string, std::string> out;
    for (auto it = values_.lower_bound(prefix); it != values_.end(); ++it) {
        if (it->first.compare(0, prefix.size(), prefix) != 0) break;
        out.emplace(it->first, it->second);
    }
    return out;
}

}  // namespace voxq::env
