// Raw SQL on a SQLite store's file, behind the queue's back: for tests that
// damage or tamper with a database on purpose.
#pragma once

#include <sqlite3.h>

#include <stdexcept>
#include <string>

#include "voxq/config.hpp"

namespace voxq::testing {

// The file a "sqlite:///..." URL names.
inline std::string sqlite_path(const QueueConfig& config) {
    const std::string prefix = "sqlite:///";
    if (config.database_url.rfind(prefix, 0) != 0) {
        throw std::invalid_argument("not a SQLite URL: " + config.database_url);
    }
    return config.database_url.substr(prefix.size());
}

inline void sqlite_exec(const QueueConfig& config, const std::string& sql) {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open(sqlite_path(config).c_str(), &db);
    char* error = nullptr;
    if (rc == SQLITE_OK) sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    const std::string message = error != nullptr ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    if (rc != SQLITE_OK || !message.empty()) {
        throw std::runtime_error("sqlite_exec: " +
                                 (message.empty() ? std::string("open") : message));
    }
}

}  // namespace voxq::testing
