// What is particular to the SQLite store: files, pragmas, migrations, reopening.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "support/processes.hpp"
#include "support/sqlite.hpp"
#include "support/tasks.hpp"
#include "support/temp_dir.hpp"
#include "voxq/errors.hpp"
#include "voxq/queue.hpp"
#include "voxq/store.hpp"
#include "voxq/worker.hpp"

namespace voxq {
namespace {

using testing::make_tasks;
using testing::TempDir;
using testing::write_garbage_mid_file;

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
        EXPECT_FALSE(queue.read_only());
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

TEST(SqliteStore, TheLogIsMovedIntoTheDatabaseWhileTheQueueRuns) {
    TempDir dir;
    QueueConfig config;
    config.database_url = dir.sqlite_url();
    WorkerQueue queue(config);
    queue.initialize();
    const auto size = [&](const char* suffix) {
        std::error_code ec;
        const auto n = std::filesystem::file_size(dir.file(std::string("queue.db") + suffix), ec);
        return ec ? std::uintmax_t{0} : n;
    };
    const std::uintmax_t empty = size("");
    std::uintmax_t largest_log = 0;
    for (int i = 0; i < 200; ++i) {
        std::vector<Task> batch = make_tasks(100);
        queue.enqueue(batch);
        largest_log = std::max(largest_log, size("-wal"));
    }
    // Checkpoints run on a thread of their own, woken by the commits: wait
    // (bounded) for the one the last commits asked for.
    constexpr std::uintmax_t kMoved = std::uintmax_t{2} << 20;
    for (int i = 0; i < 1000 && size("") < empty + kMoved; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_GE(size(""), empty + kMoved) << "the tasks are still only in the log";
    // Woken past 1,000 pages (4 MB), the writer's own fallback past 8,000.
    EXPECT_LT(largest_log, std::uintmax_t{40} << 20);
    EXPECT_EQ(queue.get_queue_stats()["pending"], 20000);
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
    EXPECT_EQ(store->schema_version(), 4);
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

// A small tmpfs that a test fills and then remounts read-only: a real read-only
// filesystem (root ignores file modes, so chmod would prove nothing).
class ReadOnlyLater {
  public:
    explicit ReadOnlyLater(std::filesystem::path where) : where_(std::move(where)) {
        std::filesystem::create_directories(where_);
        mounted_ = ::mount("tmpfs", where_.c_str(), "tmpfs", 0, "size=8m") == 0;
    }
    ~ReadOnlyLater() {
        if (mounted_) ::umount2(where_.c_str(), MNT_DETACH);
    }
    ReadOnlyLater(const ReadOnlyLater&) = delete;
    ReadOnlyLater& operator=(const ReadOnlyLater&) = delete;

    [[nodiscard]] bool mounted() const { return mounted_; }
    [[nodiscard]] std::string file(const std::string& name) const {
        return (where_ / name).string();
    }
    [[nodiscard]] std::string url(const std::string& name) const {
        return "sqlite:///" + file(name);
    }
    void make_read_only() const {
        ASSERT_EQ(::mount("tmpfs", where_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=8m"), 0);
    }

  private:
    std::filesystem::path where_;
    bool mounted_ = false;
};

void exec_sql(const std::string& path, const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
}

// Each test gets a tmpfs of its own under a temporary folder (skipped unless root).
class SqliteReadOnly : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!fs_.mounted()) GTEST_SKIP() << "mounting a tmpfs needs root";
    }
    TempDir dir_;
    ReadOnlyLater fs_{dir_.path() / "ro"};
};

template <typename F>
std::string store_error_of(F&& fn) {
    try {
        fn();
    } catch (const StoreError& e) {
        EXPECT_FALSE(e.retryable()) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "no StoreError";
    return {};
}

TEST_F(SqliteReadOnly, DatabaseServesReadsAndRefusesWritesNamingTheFile) {
    QueueConfig config;
    config.database_url = fs_.url("queue.db");
    std::vector<Task> tasks = make_tasks(5);
    {
        WorkerQueue queue(config);
        queue.initialize();
        queue.enqueue(tasks);
        for (const Task& t : queue.dequeue(2)) queue.mark_as_complete(t.id, t.attempt_count);
    }
    fs_.make_read_only();

    WorkerQueue queue(config);
    queue.initialize();  // no migration, no switch to WAL: nothing to write
    EXPECT_TRUE(queue.read_only());
    auto stats = queue.get_queue_stats();
    EXPECT_EQ(stats["completed"], 2);
    EXPECT_EQ(stats["pending"], 3);
    EXPECT_EQ(queue.get_task(tasks[4].id).state, TaskState::PENDING);
    EXPECT_EQ(queue.list_tasks({}, 10).tasks.size(), 5U);
    EXPECT_EQ(queue.queue_overview().size(), 1U);

    std::vector<Task> more = make_tasks(1);
    const std::string refused = store_error_of([&] { queue.enqueue(more); });
    EXPECT_NE(refused.find(fs_.file("queue.db")), std::string::npos) << refused;
    EXPECT_NE(refused.find("read-only"), std::string::npos) << refused;
    EXPECT_NE(store_error_of([&] { (void)queue.dequeue(1); }).find("read-only"), std::string::npos);
    EXPECT_NE(store_error_of([&] { queue.mark_as_cancelled(tasks[4].id); }).find("read-only"),
              std::string::npos);
    // Workers refuse to start rather than fail every claim.
    Worker worker(queue, WorkerOptions{}, nullptr, nullptr);
    EXPECT_NE(store_error_of([&] { worker.start(); }).find("read-only"), std::string::npos);
    EXPECT_EQ(queue.get_queue_stats()["total"], 5);
}

// A crashed writer leaves its last commits in the -wal file. Reading the main
// file alone (SQLite's "immutable" mode) would silently lose them.
TEST_F(SqliteReadOnly, DatabaseWithALeftoverWalLosesNoCommit) {
    QueueConfig config;
    config.database_url = dir_.sqlite_url();
    std::vector<Task> tasks = make_tasks(7);
    {
        WorkerQueue queue(config);
        queue.initialize();
        queue.enqueue(tasks);
        // While the queue is open its commits are still in the -wal: copy the
        // three files as a crash would leave them.
        for (const char* suffix : {"", "-wal", "-shm"}) {
            std::filesystem::copy_file(dir_.file("queue.db") + suffix,
                                       fs_.file("queue.db") + suffix);
        }
        ASSERT_GT(std::filesystem::file_size(fs_.file("queue.db-wal")), 0U);
    }
    fs_.make_read_only();
    config.database_url = fs_.url("queue.db");
    WorkerQueue queue(config);
    queue.initialize();
    EXPECT_EQ(queue.get_queue_stats()["total"], 7);
    EXPECT_EQ(queue.get_task(tasks[6].id).state, TaskState::PENDING);
}

TEST_F(SqliteReadOnly, DatabaseThatNeedsMigratingOrIsMissingSaysSo) {
    QueueConfig config;
    config.database_url = fs_.url("old.db");
    {
        WorkerQueue queue(config);
        queue.initialize();
    }
    exec_sql(fs_.file("old.db"), "DELETE FROM voxq_schema WHERE version > 1");
    fs_.make_read_only();

    const std::string old = store_error_of([&] { WorkerQueue(config).initialize(); });
    EXPECT_NE(old.find(fs_.file("old.db")), std::string::npos) << old;
    EXPECT_NE(old.find("read-only"), std::string::npos) << old;
    EXPECT_NE(old.find("version 1"), std::string::npos) << old;

    config.database_url = fs_.url("missing.db");
    const std::string missing = store_error_of([&] { WorkerQueue(config).initialize(); });
    EXPECT_NE(missing.find(fs_.file("missing.db")), std::string::npos) << missing;
    EXPECT_NE(missing.find("read-only"), std::string::npos) << missing;
    EXPECT_FALSE(std::filesystem::exists(fs_.file("missing.db")));
}

// A queue file of a few MB, closed; returns its path.
std::string filled_queue(QueueConfig& config, const TempDir& dir) {
    config.database_url = dir.sqlite_url();
    WorkerQueue queue(config);
    queue.initialize();
    for (int batch = 0; batch < 4; ++batch) {
        std::vector<Task> tasks = make_tasks(500);
        for (Task& t : tasks) t.items[0].request.text = std::string(400, 'a' + batch);
        queue.enqueue(tasks);
    }
    queue.close();
    return testing::sqlite_path(config);
}

TEST(SqliteDamage, GarbageMidFileIsFoundAtOpenAndEveryWriteIsRefusedNamingTheFile) {
    TempDir dir;
    QueueConfig config;
    const std::string path = filled_queue(config, dir);
    write_garbage_mid_file(path, 32 * 1024);

    WorkerQueue queue(config);
    queue.initialize();  // reads still work: an operator can see what is left
    const std::string damage = queue.store_damage();
    EXPECT_NE(damage.find("quick_check"), std::string::npos) << damage;
    EXPECT_EQ(queue.get_queue_stats().at("total"), 2000);
    try {
        std::vector<Task> one = make_tasks(1);
        queue.enqueue(one);
        FAIL() << "a damaged database took a write";
    } catch (const StoreError& e) {
        EXPECT_NE(std::string(e.what()).find(path + " is damaged"), std::string::npos) << e.what();
        EXPECT_FALSE(e.retryable());
    }
    EXPECT_THROW(queue.dequeue(), StoreError);
    EXPECT_THROW(queue.retry(100), StoreError);
    const std::vector<StoreFinding> findings = queue.check_store();
    ASSERT_FALSE(findings.empty());
    EXPECT_EQ(findings[0].kind, "integrity");
    EXPECT_NE(findings[0].detail.find(path), std::string::npos) << findings[0].detail;
}

TEST(SqliteDamage, DamageMetWhileRunningStopsWrites) {
    TempDir dir;
    QueueConfig config;
    const std::string path = filled_queue(config, dir);
    WorkerQueue queue(config);
    queue.initialize();
    EXPECT_EQ(queue.store_damage(), "");
    write_garbage_mid_file(path, 32 * 1024);
    // A fresh reader meets the damage on disk while listing every task.
    EXPECT_THROW(queue.list_tasks({}, 5000), StoreError);
    EXPECT_NE(queue.store_damage(), "");
    std::vector<Task> one = make_tasks(1);
    EXPECT_THROW(queue.enqueue(one), StoreError);
}

TEST(SqliteDamage, ATruncatedFileIsAFinding) {
    TempDir dir;
    QueueConfig config;
    const std::string path = filled_queue(config, dir);
    std::filesystem::resize_file(path, std::filesystem::file_size(path) / 3);
    std::vector<StoreFinding> findings;
    try {
        findings = open_store(config)->check();
    } catch (const StoreError& e) {
        findings.push_back({"integrity", e.what()});  // as `voxq check` reports it
    }
    ASSERT_FALSE(findings.empty());
    EXPECT_EQ(findings[0].kind, "integrity");
    EXPECT_NE(findings[0].detail.find(path), std::string::npos) << findings[0].detail;
}

}  // namespace
}  // namespace voxq
