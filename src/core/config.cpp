#include "voxq/config.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <vector>

#include "util/env.hpp"
#include "util/text.hpp"
#include "voxq/errors.hpp"

namespace voxq {

namespace {

// One setting: its field, environment variable, how to read and show it, and
// its range. The same table serves from_env() (errors name the variable) and
// validate() (errors name the field).
struct Setting {
    const char* field;
    const char* variable;
    std::function<void(QueueConfig&, const std::string& name, const std::string& raw)> read;
    std::function<std::string(const QueueConfig&)> show;
    std::function<std::string(const QueueConfig&)> range_problem;  // empty = fine
    decltype(ConfigField::member) member;
};

// The longest duration setting: a year of seconds. Times computed from it stay far
// from the limits of int64 microseconds.
constexpr double kMaxDuration = 366.0 * 24 * 3600;

// "must be >= min" unless min <= value (<= max, when given).
std::string out_of_range(double value, double min, std::optional<double> max = std::nullopt) {
    if (value >= min && (!max || value <= *max)) return {};
    if (max) return "must be " + format_number(min) + ".." + format_number(*max);
    return "must be >= " + format_number(min);
}

Setting integer_setting(const char* field, const char* variable, std::int64_t QueueConfig::*member,
                        std::int64_t min, std::optional<std::int64_t> max = std::nullopt) {
    return {field,
            variable,
            [member](QueueConfig& c, const std::string& n, const std::string& raw) {
                c.*member = env::parse_integer(n, raw);
            },
            [member](const QueueConfig& c) { return std::to_string(c.*member); },
            [member, min, max](const QueueConfig& c) {
                return out_of_range(
                    static_cast<double>(c.*member), static_cast<double>(min),
                    max ? std::optional<double>(static_cast<double>(*max)) : std::nullopt);
            },
            member};
}

Setting number_setting(const char* field, const char* variable, double QueueConfig::*member,
                       std::function<std::string(const QueueConfig&)> range_problem) {
    return {field,
            variable,
            [member](QueueConfig& c, const std::string& n, const std::string& raw) {
                c.*member = env::parse_number(n, raw);
            },
            [member](const QueueConfig& c) { return format_number(c.*member); },
            std::move(range_problem),
            member};
}

const std::vector<Setting>& settings() {
    static const std::vector<Setting> table = {
        {"database_url", "QUEUE_DATABASE_URL",
         [](QueueConfig& c, const std::string&, const std::string& raw) { c.database_url = raw; },
         [](const QueueConfig& c) { return c.database_url; },
         [](const QueueConfig&) { return std::string(); }, &QueueConfig::database_url},
        integer_setting("default_max_attempts", "QUEUE_MAX_ATTEMPTS",
                        &QueueConfig::default_max_attempts, 1, 1'000'000),
        number_setting("default_visibility_timeout", "QUEUE_VISIBILITY_TIMEOUT",
                       &QueueConfig::default_visibility_timeout,
                       [](const QueueConfig& c) {
                           if (!(c.default_visibility_timeout > 0))
                               return std::string("must be > 0");
                           return out_of_range(c.default_visibility_timeout, 0, kMaxDuration);
                       }),
        number_setting("retry_backoff_multiplier", "QUEUE_RETRY_BACKOFF_MULTIPLIER",
                       &QueueConfig::retry_backoff_multiplier,
                       [](const QueueConfig& c) {
                           return out_of_range(c.retry_backoff_multiplier, 1.0, 1000.0);
                       }),
        number_setting("retry_base_delay", "QUEUE_RETRY_BASE_DELAY", &QueueConfig::retry_base_delay,
                       [](const QueueConfig& c) {
                           return out_of_range(c.retry_base_delay, 0.0, kMaxDuration);
                       }),
        number_setting("max_retry_delay", "QUEUE_MAX_RETRY_DELAY", &QueueConfig::max_retry_delay,
                       [](const QueueConfig& c) {
                           if (c.max_retry_delay > kMaxDuration)
                               return out_of_range(c.max_retry_delay, 0.0, kMaxDuration);
                           if (c.max_retry_delay >= c.retry_base_delay) return std::string();
                           return "must be >= the retry base delay (" +
                                  format_number(c.retry_base_delay) + ")";
                       }),
        integer_setting("batch_size", "QUEUE_BATCH_SIZE", &QueueConfig::batch_size, 1, 100'000),
        integer_setting("max_text_length", "VOXQ_MAX_TEXT_LENGTH", &QueueConfig::max_text_length, 1,
                        1'000'000),
        {"sqlite_synchronous", "VOXQ_SQLITE_SYNCHRONOUS",
         [](QueueConfig& c, const std::string& n, const std::string& raw) {
             const auto mode = parse_sqlite_synchronous(raw);
             if (!mode) throw ConfigError(n + ": " + env::quoted(raw) + " is not FULL or NORMAL");
             c.sqlite_synchronous = *mode;
         },
         [](const QueueConfig& c) { return std::string(to_string(c.sqlite_synchronous)); },
         [](const QueueConfig&) { return std::string(); }, &QueueConfig::sqlite_synchronous},
        integer_setting("sqlite_busy_timeout_ms", "VOXQ_SQLITE_BUSY_TIMEOUT_MS",
                        &QueueConfig::sqlite_busy_timeout_ms, 0, 3'600'000),
        integer_setting("error_history_limit", "VOXQ_ERROR_HISTORY",
                        &QueueConfig::error_history_limit, 1, 1000),
        integer_setting("max_stalls", "VOXQ_MAX_STALLS", &QueueConfig::max_stalls, 1, 1000),
        {"postgres_schema", "VOXQ_PG_SCHEMA",
         [](QueueConfig& c, const std::string&, const std::string& raw) {
             c.postgres_schema = raw;
         },
         [](const QueueConfig& c) { return c.postgres_schema; },
         [](const QueueConfig& c) {
             const std::string& s = c.postgres_schema;
             const bool ok =
                 !s.empty() && s.size() <= 63 && !(s[0] >= '0' && s[0] <= '9') &&
                 s.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos;
             return ok ? std::string()
                       : std::string("must be 1-63 of a-z 0-9 _, not starting with a digit");
         },
         &QueueConfig::postgres_schema},
        integer_setting("postgres_pool_size", "VOXQ_PG_POOL_SIZE", &QueueConfig::postgres_pool_size,
                        1, 1000),
        number_setting("postgres_query_timeout", "VOXQ_PG_QUERY_TIMEOUT",
                       &QueueConfig::postgres_query_timeout,
                       [](const QueueConfig& c) {
                           if (!(c.postgres_query_timeout >= 1)) return std::string("must be >= 1");
                           return out_of_range(c.postgres_query_timeout, 1, 86'400);
                       }),
    };
    return table;
}

}  // namespace

const std::vector<ConfigField>& config_fields() {
    static const std::vector<ConfigField> fields = [] {
        std::vector<ConfigField> out;
        for (const Setting& s : settings()) out.push_back({s.field, s.variable, s.member});
        return out;
    }();
    return fields;
}

std::string_view to_string(SqliteSynchronous mode) noexcept {
    return mode == SqliteSynchronous::Full ? "FULL" : "NORMAL";
}

std::optional<SqliteSynchronous> parse_sqlite_synchronous(std::string_view text) {
    std::string upper(text);
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (upper == "FULL") return SqliteSynchronous::Full;
    if (upper == "NORMAL") return SqliteSynchronous::Normal;
    return std::nullopt;
}

namespace {

// Checks ranges; `by_variable` picks the name errors use.
void check(const QueueConfig& c, bool by_variable) {
    for (const Setting& s : settings()) {
        const std::string name = by_variable ? s.variable : s.field;
        if (std::string problem = s.range_problem(c); !problem.empty()) {
            std::string message = name;
            message += ": " + env::quoted(s.show(c));
            message += " " + problem;
            throw ConfigError(message);
        }
    }
    (void)parse_database_url(c.database_url, by_variable ? "QUEUE_DATABASE_URL" : "database_url");
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.rfind(prefix, 0) == 0;
}

}  // namespace

DatabaseLocation parse_database_url(const std::string& url, const std::string& variable) {
    for (const char* scheme : {"sqlite:///", "sqlite+aiosqlite:///", "sqlite+pysqlite:///"}) {
        if (starts_with(url, scheme)) {
            std::string path = url.substr(std::char_traits<char>::length(scheme));
            if (path.empty()) {
                throw ConfigError(variable + ": " + env::quoted(url) + " names no database file");
            }
            // SQLite URI filenames and parameters (file:, ?mode=memory, ?nolock=1,
            // ?immutable=1) would change what the queue guarantees: refused.
            if (path.find('?') != std::string::npos || starts_with(path, "file:"))
                throw ConfigError(variable + ": " + env::quoted(redact_credentials(url)) +
                                  " has SQLite URI parameters, which voxq does not take "
                                  "(write sqlite:///path.db)");
            // "sqlite:////abs" leaves "/abs": absolute. "sqlite:///rel" leaves "rel".
            return {DatabaseLocation::Kind::Sqlite, path};
        }
    }
    for (const char* scheme : {"postgresql://", "postgres://"}) {
        if (starts_with(url, scheme)) return {DatabaseLocation::Kind::Postgres, url};
    }
    for (const char* driver : {"postgresql+asyncpg://", "postgresql+psycopg://",
                               "postgresql+psycopg2://", "postgresql+pg8000://"}) {
        if (starts_with(url, driver)) {
            return {DatabaseLocation::Kind::Postgres,
                    "postgresql://" + url.substr(std::char_traits<char>::length(driver))};
        }
    }
    throw ConfigError(variable + ": " + env::quoted(redact_credentials(url)) +
                      " is not a supported database URL (use sqlite:///path.db or "
                      "postgresql://...)");
}

QueueConfig QueueConfig::from_map(const std::map<std::string, std::string>& env) {
    QueueConfig config;
    for (const Setting& s : settings()) {
        if (auto it = env.find(s.variable); it != env.end()) s.read(config, s.variable, it->second);
    }
    check(config, /*by_variable=*/true);
    return config;
}

QueueConfig QueueConfig::from_env() {
    const env::Reader vars;
    std::map<std::string, std::string> values;
    for (const Setting& s : settings()) {
        if (auto v = vars.text(s.variable)) values.emplace(s.variable, std::move(*v));
    }
    return from_map(values);
}

void QueueConfig::validate() const {
    check(*this, /*by_variable=*/false);
}

double RetryPolicy::delay_after(std::int64_t attempt_count) const {
    const double exponent = static_cast<double>(std::max<std::int64_t>(attempt_count, 1) - 1);
    const double delay = base_delay * std::pow(multiplier, exponent);
    if (!std::isfinite(delay)) return max_delay;
    return std::min(delay, max_delay);
}

}  // namespace voxq
