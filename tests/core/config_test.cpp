#include "voxq/config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include "voxq/errors.hpp"

namespace voxq {
namespace {

std::string config_error(const std::map<std::string, std::string>& env) {
    try {
        (void)QueueConfig::from_map(env);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

TEST(QueueConfig, DefaultsAreTheGuides) {
    const QueueConfig c = QueueConfig::from_map({});
    EXPECT_EQ(c.database_url, "sqlite+aiosqlite:///data/queue.db");
    EXPECT_EQ(c.default_max_attempts, 3);
    EXPECT_DOUBLE_EQ(c.default_visibility_timeout, 3600);
    EXPECT_DOUBLE_EQ(c.retry_backoff_multiplier, 2.0);
    EXPECT_DOUBLE_EQ(c.retry_base_delay, 60);
    EXPECT_DOUBLE_EQ(c.max_retry_delay, 3600);
    EXPECT_EQ(c.batch_size, 100);
    EXPECT_EQ(c.sqlite_synchronous, SqliteSynchronous::Full);
}

TEST(QueueConfig, ReadsEveryVariable) {
    const QueueConfig c = QueueConfig::from_map({
        {"QUEUE_DATABASE_URL", "sqlite:////tmp/x.db"},
        {"QUEUE_MAX_ATTEMPTS", "7"},
        {"QUEUE_VISIBILITY_TIMEOUT", "90.5"},
        {"QUEUE_RETRY_BACKOFF_MULTIPLIER", "1.5"},
        {"QUEUE_RETRY_BASE_DELAY", "0"},
        {"QUEUE_MAX_RETRY_DELAY", "10"},
        {"QUEUE_BATCH_SIZE", "25"},
        {"VOXQ_SQLITE_SYNCHRONOUS", "normal"},
        {"VOXQ_MAX_TEXT_LENGTH", "500"},
        {"VOXQ_PG_SCHEMA", "speech_q"},
        {"VOXQ_PG_POOL_SIZE", "4"},
    });
    EXPECT_EQ(c.database_url, "sqlite:////tmp/x.db");
    EXPECT_EQ(c.default_max_attempts, 7);
    EXPECT_DOUBLE_EQ(c.default_visibility_timeout, 90.5);
    EXPECT_DOUBLE_EQ(c.retry_backoff_multiplier, 1.5);
    EXPECT_DOUBLE_EQ(c.retry_base_delay, 0);
    EXPECT_DOUBLE_EQ(c.max_retry_delay, 10);
    EXPECT_EQ(c.batch_size, 25);
    EXPECT_EQ(c.sqlite_synchronous, SqliteSynchronous::Normal);
    EXPECT_EQ(c.max_text_length, 500);
    EXPECT_EQ(c.postgres_schema, "speech_q");
    EXPECT_EQ(c.postgres_pool_size, 4);
}

TEST(QueueConfig, FromEnvReadsTheProcessEnvironment) {
    setenv("QUEUE_BATCH_SIZE", "42", 1);
    const QueueConfig c = QueueConfig::from_env();
    unsetenv("QUEUE_BATCH_SIZE");
    EXPECT_EQ(c.batch_size, 42);
    setenv("QUEUE_MAX_ATTEMPTS", "abc", 1);
    EXPECT_THROW((void)QueueConfig::from_env(), ConfigError);
    unsetenv("QUEUE_MAX_ATTEMPTS");
}

TEST(QueueConfig, BadValuesNameTheVariableAndValue) {
    struct Case {
        std::string variable, value, expected;
    };
    const std::vector<Case> cases = {
        {"QUEUE_MAX_ATTEMPTS", "abc", "QUEUE_MAX_ATTEMPTS: 'abc' is not an integer"},
        {"QUEUE_MAX_ATTEMPTS", "0", "QUEUE_MAX_ATTEMPTS: '0' must be 1..1000000"},
        {"QUEUE_MAX_ATTEMPTS", "-1", "QUEUE_MAX_ATTEMPTS: '-1' must be 1..1000000"},
        {"QUEUE_MAX_ATTEMPTS", "2.5", "QUEUE_MAX_ATTEMPTS: '2.5' is not an integer"},
        {"QUEUE_VISIBILITY_TIMEOUT", "0", "QUEUE_VISIBILITY_TIMEOUT: '0' must be > 0"},
        {"QUEUE_VISIBILITY_TIMEOUT", "-1", "QUEUE_VISIBILITY_TIMEOUT: '-1' must be > 0"},
        {"QUEUE_VISIBILITY_TIMEOUT", "abc", "QUEUE_VISIBILITY_TIMEOUT: 'abc' is not a number"},
        {"QUEUE_RETRY_BACKOFF_MULTIPLIER", "0.5",
         "QUEUE_RETRY_BACKOFF_MULTIPLIER: '0.5' must be 1..1000"},
        {"QUEUE_RETRY_BACKOFF_MULTIPLIER", "abc",
         "QUEUE_RETRY_BACKOFF_MULTIPLIER: 'abc' is not a number"},
        {"QUEUE_RETRY_BASE_DELAY", "-1", "QUEUE_RETRY_BASE_DELAY: '-1' must be 0..31622400"},
        {"QUEUE_RETRY_BASE_DELAY", "abc", "QUEUE_RETRY_BASE_DELAY: 'abc' is not a number"},
        {"QUEUE_MAX_RETRY_DELAY", "30",
         "QUEUE_MAX_RETRY_DELAY: '30' must be >= the retry base delay (60)"},
        {"QUEUE_MAX_RETRY_DELAY", "abc", "QUEUE_MAX_RETRY_DELAY: 'abc' is not a number"},
        {"QUEUE_BATCH_SIZE", "0", "QUEUE_BATCH_SIZE: '0' must be 1..100000"},
        {"QUEUE_BATCH_SIZE", "-1", "QUEUE_BATCH_SIZE: '-1' must be 1..100000"},
        {"QUEUE_BATCH_SIZE", "abc", "QUEUE_BATCH_SIZE: 'abc' is not an integer"},
        {"QUEUE_BATCH_SIZE", "", "QUEUE_BATCH_SIZE: '' is not an integer"},
        {"QUEUE_DATABASE_URL", "mysql://x/y",
         "QUEUE_DATABASE_URL: 'mysql://x/y' is not a supported database URL"},
        {"QUEUE_DATABASE_URL", "sqlite:///",
         "QUEUE_DATABASE_URL: 'sqlite:///' names no database file"},
        {"VOXQ_SQLITE_SYNCHRONOUS", "OFF", "VOXQ_SQLITE_SYNCHRONOUS: 'OFF' is not FULL or NORMAL"},
        {"VOXQ_MAX_TEXT_LENGTH", "0", "VOXQ_MAX_TEXT_LENGTH: '0' must be 1..1000000"},
        {"VOXQ_PG_SCHEMA", "Bad-Name", "VOXQ_PG_SCHEMA: 'Bad-Name' must be 1-63 of a-z 0-9 _"},
        {"VOXQ_PG_SCHEMA", "1abc", "VOXQ_PG_SCHEMA: '1abc' must be 1-63 of a-z 0-9 _"},
        {"VOXQ_PG_SCHEMA", "", "VOXQ_PG_SCHEMA: '' must be 1-63 of a-z 0-9 _"},
        {"VOXQ_PG_POOL_SIZE", "0", "VOXQ_PG_POOL_SIZE: '0' must be 1..1000"},
        {"VOXQ_PG_POOL_SIZE", "many", "VOXQ_PG_POOL_SIZE: 'many' is not an integer"},
    };
    for (const Case& c : cases) {
        const std::string message = config_error({{c.variable, c.value}});
        EXPECT_EQ(message.substr(0, c.expected.size()), c.expected) << c.variable << "=" << c.value;
    }
}

TEST(QueueConfig, ValidateNamesTheField) {
    QueueConfig c;
    c.batch_size = 0;
    try {
        c.validate();
        FAIL();
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), "batch_size: '0' must be 1..100000");
    }
}

TEST(DatabaseUrl, AcceptsTheGuidesForms) {
    EXPECT_EQ(parse_database_url("sqlite+aiosqlite:///data/queue.db").target, "data/queue.db");
    EXPECT_EQ(parse_database_url("sqlite:///rel/q.db").target, "rel/q.db");
    EXPECT_EQ(parse_database_url("sqlite:////abs/q.db").target, "/abs/q.db");
    EXPECT_EQ(parse_database_url("sqlite:///:memory:").target, ":memory:");
    const auto pg = parse_database_url("postgresql+asyncpg://u:p@h:5432/db");
    EXPECT_EQ(pg.kind, DatabaseLocation::Kind::Postgres);
    EXPECT_EQ(pg.target, "postgresql://u:p@h:5432/db");
    EXPECT_EQ(parse_database_url("postgres://h/db").target, "postgres://h/db");
    EXPECT_EQ(parse_database_url("postgresql+psycopg://h/db").target, "postgresql://h/db");
    EXPECT_THROW((void)parse_database_url("redis://x"), ConfigError);
}

TEST(RetryPolicy, DelayGrowsThenCaps) {
    const RetryPolicy p{60, 2.0, 3600};
    EXPECT_DOUBLE_EQ(p.delay_after(1), 60);
    EXPECT_DOUBLE_EQ(p.delay_after(2), 120);
    EXPECT_DOUBLE_EQ(p.delay_after(6), 1920);
    EXPECT_DOUBLE_EQ(p.delay_after(7), 3600);
    EXPECT_DOUBLE_EQ(p.delay_after(10'000), 3600);
    EXPECT_DOUBLE_EQ((RetryPolicy{0, 2.0, 10}).delay_after(5), 0);
}

}  // namespace
}  // namespace voxq
