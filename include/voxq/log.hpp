// File: voxq/log.hpp
//
// What voxq tells its operator (SPEC §5, §13). The library logs only through a
// Logger, injected like the Clock (WorkerQueue's constructor; the worker, the
// stores, the engines and the server take the queue's), so an application can
// route voxq's events into its own logging and tests can read them.
//
// Levels: debug (each task state change), info (start-up, shutdown), warning
// (a failed attempt, a lost connection: voxq carries on), error (something
// unexpected). Events carry fields (task_id, attempt, ...) besides the message.
// Nothing logged carries a secret: database URLs are redacted, tokens and
// webhook secrets are never passed to a logger.
//
// Thread-safety: a Logger is called from many threads at once.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace voxq {

enum class LogLevel { Debug = 0, Info = 1, Warning = 2, Error = 3 };

// "debug", "info", "warning", "error".
[[nodiscard]] const char* log_level_name(LogLevel level) noexcept;

// One field of an event: a key and a text or integer value.
struct LogField {
    LogField(std::string_view k, std::string_view v) : key(k), text(v) {}
    LogField(std::string_view k, const char* v) : key(k), text(v) {}
    LogField(std::string_view k, const std::string& v) : key(k), text(v) {}
    template <typename T>
    requires std::is_integral_v<T> LogField(std::string_view k, T v)
        : key(k), text(std::to_string(v)), is_number(true) {}
    // Three decimals ("1.250"); NaN and infinities as text.
    LogField(std::string_view k, double v);

    std::string_view key;
    std::string text;
    bool is_number = false;
};

class Logger {
  public:
    virtual ~Logger() = default;
    // Whether an event at `level` would be written (skip building costly fields).
    [[nodiscard]] virtual bool enabled(LogLevel level) const noexcept = 0;
    // Writes one event. Never throws.
    virtual void write(LogLevel level, std::string_view message,
                       std::initializer_list<LogField> fields) noexcept = 0;

    void debug(std::string_view message, std::initializer_list<LogField> fields = {}) noexcept {
        if (enabled(LogLevel::Debug)) write(LogLevel::Debug, message, fields);
    }
    void info(std::string_view message, std::initializer_list<LogField> fields = {}) noexcept {
        if (enabled(LogLevel::Info)) write(LogLevel::Info, message, fields);
    }
    void warning(std::string_view message, std::initializer_list<LogField> fields = {}) noexcept {
        if (enabled(LogLevel::Warning)) write(LogLevel::Warning, message, fields);
    }
    void error(std::string_view message, std::initializer_list<LogField> fields = {}) noexcept {
        if (enabled(LogLevel::Error)) write(LogLevel::Error, message, fields);
    }
};

enum class LogFormat { Text, Json };

struct LogConfig {
    LogLevel level = LogLevel::Info;
    LogFormat format = LogFormat::Text;

    // VOXQ_LOG_LEVEL (debug, info, warning, error) and VOXQ_LOG_FORMAT (text,
    // json); ConfigError naming the variable for any other value.
    static LogConfig from_env();
};

// One event a line on a file descriptor (stderr by default), each line written
// with one write(2) so lines from threads and processes never interleave.
// Text: "2026-11-30T22:10:00.123Z warning message | task_id=… attempt=2", with
// control characters escaped and values with spaces quoted. Json: {"ts":…,"level":…,"msg":…,
// fields…}.
class StreamLogger final : public Logger {
  public:
    explicit StreamLogger(LogConfig config, int fd = 2);
    [[nodiscard]] bool enabled(LogLevel level) const noexcept override;
    void write(LogLevel level, std::string_view message,
               std::initializer_list<LogField> fields) noexcept override;

  private:
    LogConfig config_;
    int fd_;
};

// The process's default: a StreamLogger on stderr configured from the
// environment when first asked for (ConfigError if VOXQ_LOG_* is invalid).
[[nodiscard]] std::shared_ptr<Logger> default_logger();

}  // namespace voxq
