// Raw SQL on a SQLite store's file, behind the queue's back: for tests that
// damage or tamper with a database on purpose.
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <random>
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

// Overwrites `size` bytes in the middle of `path` with random bytes, as a bad
// disk or a stray write would.
inline void write_garbage_mid_file(const std::string& path, std::size_t size) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) / 2));
    std::mt19937 random(7);
    std::string garbage(size, '\0');
    for (char& c : garbage) c = static_cast<char>(random());
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
}

}  // namespace voxq::testing
