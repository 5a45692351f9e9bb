#include "voxq/log.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>

#include "util/env.hpp"
#include "util/text.hpp"
#include "util/time.hpp"
#include "voxq/errors.hpp"

namespace voxq {

namespace {

// Longest message or field value kept; a line stays readable and bounded
// whatever an outside party put into an error message.
constexpr std::size_t kMaxValueBytes = 2000;

std::string json_string(std::string_view text) {
    return nlohmann::json(truncate_utf8(text, kMaxValueBytes))
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A text-format value: bare when it is one plain word, else quoted; control
// characters escaped either way.
std::string text_value(std::string_view text) {
    std::string safe = escape_for_terminal(truncate_utf8(text, kMaxValueBytes));
    const bool plain = !safe.empty() && safe.find_first_of(" \"=") == std::string::npos;
    if (plain) return safe;
    std::string out = "\"";
    for (char c : safe) {
        if (c == '"') out += '\\';
        out += c;
    }
    return out + '"';
}

void write_all(int fd, const std::string& line) noexcept {
    std::size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // nowhere to tell anyone
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace

LogField::LogField(std::string_view k, double v) : key(k), is_number(std::isfinite(v)) {
    char out[64];
    std::snprintf(out, sizeof out, "%.3f", v);
    text = out;
}

const char* log_level_name(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::Debug:
            return "debug";
        case LogLevel::Info:
            return "info";
        case LogLevel::Warning:
            return "warning";
        case LogLevel::Error:
            return "error";
    }
    return "error";
}

LogConfig LogConfig::from_env() {
    LogConfig c;
    const env::Reader reader;
    if (const auto level = reader.text("VOXQ_LOG_LEVEL"); level && !level->empty()) {
        if (*level == "debug") {
            c.level = LogLevel::Debug;
        } else if (*level == "info") {
            c.level = LogLevel::Info;
        } else if (*level == "warning" || *level == "warn") {
            c.level = LogLevel::Warning;
        } else if (*level == "error") {
            c.level = LogLevel::Error;
        } else {
            throw ConfigError("VOXQ_LOG_LEVEL: " + env::quoted(*level) +
                              " is not one of debug, info, warning, error");
        }
    }
    if (const auto format = reader.text("VOXQ_LOG_FORMAT"); format && !format->empty()) {
        if (*format == "text") {
            c.format = LogFormat::Text;
        } else if (*format == "json") {
            c.format = LogFormat::Json;
        } else {
            throw ConfigError("VOXQ_LOG_FORMAT: " + env::quoted(*format) + " is not text or json");
        }
    }
    return c;
}

StreamLogger::StreamLogger(LogConfig config, int fd) : config_(config), fd_(fd) {}

bool StreamLogger::enabled(LogLevel level) const noexcept {
    return level >= config_.level;
}

void StreamLogger::write(LogLevel level, std::string_view message,
                         std::initializer_list<LogField> fields) noexcept {
    if (!enabled(level)) return;
    try {
        const double now =
            static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count()) /
            1e6;
        std::string line;
        if (config_.format == LogFormat::Json) {
            line = R"({"ts":")" + detail::rfc3339_utc(now) + R"(","level":")" +
                   log_level_name(level) + R"(","msg":)" + json_string(message);
            for (const LogField& f : fields) {
                line += ',' + json_string(f.key) + ':';
                line += f.is_number ? f.text : json_string(f.text);
            }
            line += "}\n";
        } else {
            line = detail::rfc3339_utc(now) + ' ' + log_level_name(level) + ' ' +
                   escape_for_terminal(truncate_utf8(message, kMaxValueBytes));
            // " |" parts the message (free text) from the key=value fields.
            if (fields.size() > 0) line += " |";
            for (const LogField& f : fields) {
                line += ' ' + escape_for_terminal(f.key) + '=' + text_value(f.text);
            }
            line += '\n';
        }
        write_all(fd_, line);
    } catch (...) {
        // Out of memory while logging: the event is lost, the caller goes on.
    }
}

std::shared_ptr<Logger> default_logger() {
    static std::mutex mutex;
    static std::shared_ptr<Logger> logger;
    std::lock_guard lock(mutex);
    if (!logger) logger = std::make_shared<StreamLogger>(LogConfig::from_env());
    return logger;
}

}  // namespace voxq
