// What is particular to the SQLite store: files, pragmas, migrations, reopening.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "support/processes.hpp"
#include "support/tasks.hpp"
#include "support/temp_dir.hpp"
#include "voxq/queue.hpp"

namespace voxq {
namespace {

using testing::make_tasks;
using testing::TempDir;

std::string pragma(const std::string& path, const std::string& name) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, ("PRAGMA " + name).c_str(), -1, &stmt, nullptr);
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

TEST(SqliteStore, CreatesMissingFoldersAndUsesWal) {
    TempDir dir;
    QueueConfig config;
    config.database_url = "sqlite:///" + dir.file("a/b/c/queue.db");
    WorkerQueue queue(config);
    queue.initialize();
    EXPECT_TRUE(std::filesystem::exists(dir.file("a/b/c/queue.db")));
    EXPECT_EQ(pragma(dir.file("a/b/c/queue.db"), "journal_mode"), "wal");
}

TEST(SqliteStore, RelativeUrlIsRelativeToTheWorkingDirectory) {
    TempDir dir;
    const auto old = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    {
        WorkerQueue queue(QueueConfig{});  // the default: sqlite+aiosqlite:///data/queue.db
        queue.initialize();
    }
    std::filesystem::current_path(old);
    EXPECT_TRUE(std::filesystem::exists(dir.file("data/queue.db")));
}

TEST(SqliteStore, EverythingSurvivesReopening) {
    TempDir dir;
    QueueConfig config;
    config.database_url = dir.sqlite_url();
    std::vector<Task> tasks = make_tasks(50);
    {
        WorkerQueue queue(config);
        queue.initialize();
        queue.enqueue(tasks);
        for (const Task& t : queue.dequeue(20)) queue.mark_as_complete(t.id, t.attempt_count);
        queue.mark_as_cancelled(tasks[49].id);
    }
    WorkerQueue queue(config);
    queue.initialize();
    auto stats = queue.get_queue_stats();
    EXPECT_EQ(stats["completed"], 20);
    EXPECT_EQ(stats["cancelled"], 1);
    EXPECT_EQ(stats["pending"], 29);
    EXPECT_EQ(stats["total"], 50);
    EXPECT_EQ(queue.get_task(tasks[0].id).state, TaskState::COMPLETED);
    EXPECT_EQ(pragma(dir.file("queue.db"), "integrity_check"), "ok");
}

TEST(SqliteStore, ProcessesMigratingAtOnceApplyEachMigrationOnce) {
    TempDir dir;
    QueueConfig config;
    config.database_url = dir.sqlite_url();
    std::vector<pid_t> children;
    for (int i = 0; i < 4; ++i) {
        children.push_back(testing::spawn([&] {
            WorkerQueue queue(config);
            queue.initialize();
            std::vector<Task> t = make_tasks(10);
            queue.enqueue(t);
        }));
    }
    for (pid_t pid : children) EXPECT_EQ(testing::wait_for(pid), 0);
    WorkerQueue queue(config);
    queue.initialize();
    EXPECT_EQ(queue.get_queue_stats()["total"], 40);
    auto store = open_store(config);
    EXPECT_EQ(store->schema_version(), 3);
}

TEST(SqliteStore, LockedPastTheBusyTimeoutIsAStoreErrorAndChangesNothing) {
    TempDir dir;
    QueueConfig config;
    config.database_url = dir.sqlite_url();
    config.sqlite_busy_timeout_ms = 50;
    WorkerQueue queue(config);
    queue.initialize();
    std::vector<Task> tasks = make_tasks(1);
    queue.enqueue(tasks);

    // Another connection holds the write lock.
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(dir.file("queue.db").c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    try {
        queue.mark_as_cancelled(tasks[0].id);
        ADD_FAILURE() << "write succeeded under a foreign lock";
    } catch (const StoreError& e) {
        EXPECT_TRUE(e.retryable());
        EXPECT_NE(std::string(e.what()).find("locked"), std::string::npos) << e.what();
    }
    sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(other);
    EXPECT_EQ(queue.get_task(tasks[0].id).state, TaskState::PENDING);
    queue.mark_as_cancelled(tasks[0].id);  // works once the lock is gone
    EXPECT_EQ(queue.get_task(tasks[0].id).state, TaskState::CANCELLED);
}

}  // namespace
}  // namespace voxq
