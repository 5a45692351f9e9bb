// The throwaway PostgreSQL server started by scripts/with-postgres.sh.
//
// Tests that need it call pg_url_or_skip(): without VOXQ_TEST_PG_URL they skip,
// unless VOXQ_REQUIRE_PG=1 (set by the script, hence by `make test` and CI), in
// which case they fail: CI never skips them for want of a server.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <random>
#include <string>

#include "voxq/config.hpp"

namespace voxq::testing {

inline std::string pg_test_url() {
    const char* url = std::getenv("VOXQ_TEST_PG_URL");
    return url != nullptr ? url : "";
}

inline bool pg_required() {
    const char* v = std::getenv("VOXQ_REQUIRE_PG");
    return v != nullptr && std::string(v) == "1";
}

// A fresh schema name, so each test starts from an empty database.
inline std::string fresh_schema() {
    std::random_device rd;
    char buf[32];
    std::snprintf(buf, sizeof buf, "t_%08x%08x", rd(), rd());
    return buf;
}

// Runs one SQL command on the test server (for setup and cleanup).
inline void pg_exec(const std::string& sql) {
    PGconn* c = PQconnectdb(pg_test_url().c_str());
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    PGresult* r = PQexec(c, sql.c_str());
    PQclear(r);
    PQfinish(c);
}

}  // namespace voxq::testing

// Skips (or, when the server is required, fails) a test without a server.
#define VOXQ_REQUIRE_POSTGRES()                                                          \
    do {                                                                                 \
        if (::voxq::testing::pg_test_url().empty()) {                                    \
            if (::voxq::testing::pg_required()) FAIL() << "VOXQ_TEST_PG_URL is not set"; \
            GTEST_SKIP() << "no PostgreSQL: run under scripts/with-postgres.sh";         \
        }                                                                                \
    } while (0)

namespace voxq::testing {

// A test with a fresh PostgreSQL schema of its own in config_, dropped afterwards.
class PostgresSchemaTest : public ::testing::Test {
  protected:
    void SetUp() override {
        VOXQ_REQUIRE_POSTGRES();
        config_.database_url = pg_test_url();
        config_.postgres_schema = fresh_schema();
    }
    void TearDown() override {
        if (!pg_test_url().empty()) {
            pg_exec("DROP SCHEMA IF EXISTS " + config_.postgres_schema + " CASCADE");
        }
    }
    QueueConfig config_;
};

}  // namespace voxq::testing
