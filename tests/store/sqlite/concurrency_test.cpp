// Concurrency and crash claims, proven by racing threads and processes on real
// SQLite files and then checking invariants.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "support/drain.hpp"
#include "support/processes.hpp"
#include "support/tasks.hpp"
#include "support/temp_dir.hpp"
#include "voxq/queue.hpp"

namespace voxq {
namespace {

using testing::make_tasks;
using testing::TempDir;

TEST(SqliteConcurrency, EightThreadsCompleteEachTaskExactlyOnce) {
    TempDir dir;
    QueueConfig config;
    config.database_url = dir.sqlite_url();
    WorkerQueue queue(config);
    queue.initialize();
    constexpr std::size_t kTasks = 20'000;
    std::vector<std::string> ids;
    for (std::size_t done = 0; done < kTasks; done += 500) {
        std::vector<Task> batch = make_tasks(500);
        ASSERT_EQ(queue.enqueue(batch), 500U);
        for (const Task& t : batch) ids.push_back(t.id);
    }
    const testing::DrainResult drained = testing::drain(queue, testing::with_threads(8));
    const std::vector<std::string>& completed = drained.completed;

    EXPECT_EQ(drained.dequeued, static_cast<std::int64_t>(kTasks)) << "a task was handed out twice";
    EXPECT_EQ(drained.store_errors, 0);
    EXPECT_EQ(completed.size(), kTasks);
    EXPECT_EQ(std::set<std::string>(completed.begin(), completed.end()),
              std::set<std::string>(ids.begin(), ids.end()));
    auto stats = queue.get_queue_stats();
    EXPECT_EQ(stats["completed"], static_cast<std::int64_t>(kTasks));
    EXPECT_EQ(stats["pending"], 0);
    EXPECT_EQ(stats["processing"], 0);
    EXPECT_EQ(stats["total"], static_cast<std::int64_t>(kTasks));
}

TEST(SqliteConcurrency, ThreadsRacingOnTheSameTasksSettleEachOnce) {
    // Many threads try to complete/cancel/retry the same ids; exactly one
    // transition per task succeeds, the others get InvalidStateTransitionError.
    TempDir dir;
    QueueConfig config;
    config.database_url = dir.sqlite_url();
    config.sqlite_synchronous = SqliteSynchronous::Normal;
    WorkerQueue queue(config);
    queue.initialize();
    std::vector<Task> tasks = make_tasks(300);
    queue.enqueue(tasks);
    const auto claimed = queue.dequeue(300);
    ASSERT_EQ(claimed.size(), 300U);
    std::atomic<int> wins = 0;
    std::atomic<int> refusals = 0;
    std::vector<std::thread> pool;
    for (int i = 0; i < 6; ++i) {
        pool.emplace_back([&, i] {
            for (const Task& t : claimed) {
                try {
                    if (i % 3 == 0) queue.mark_as_complete(t.id, 1);
                    if (i % 3 == 1) queue.mark_as_retry(t.id, "x", 1);
                    if (i % 3 == 2) queue.mark_as_discarded(t.id, 1);
                    ++wins;
                } catch (const InvalidStateTransitionError&) {
                    ++refusals;
                }
            }
        });
    }
    for (auto& t : pool) t.join();
    EXPECT_EQ(wins.load(), 300);
    EXPECT_EQ(refusals.load(), 300 * 5);
    auto stats = queue.get_queue_stats();
    EXPECT_EQ(stats["completed"] + stats["retryable"] + stats["discarded"], 300);
    EXPECT_EQ(stats["processing"], 0);
}

TEST(SqliteConcurrency, FourProcessesOnOneFileCompleteEachTaskExactlyOnce) {
    TempDir dir;
    QueueConfig config;
    config.database_url = dir.sqlite_url();
    constexpr std::size_t kTasks = 20'000;
    {
        WorkerQueue queue(config);
        queue.initialize();
        for (std::size_t done = 0; done < kTasks; done += 1000) {
            std::vector<Task> batch = make_tasks(1000);
            queue.enqueue(batch);
        }
    }
    std::vector<pid_t> children;
    for (int p = 0; p < 4; ++p) {
        children.push_back(testing::spawn([&, p] {
            WorkerQueue queue(config);
            queue.initialize();
            const auto drained = testing::drain(queue, testing::with_threads(2));
            std::ofstream out(dir.file("completed-" + std::to_string(p)));
            for (const std::string& id : drained.completed) out << id << "\n";
            if (drained.dequeued != static_cast<std::int64_t>(drained.completed.size())) {
                throw std::runtime_error("dequeued and completed differ");
            }
        }));
    }
    for (pid_t pid : children) EXPECT_EQ(testing::wait_for(pid), 0);

    std::multiset<std::string> all;
    for (int p = 0; p < 4; ++p) {
        std::ifstream in(dir.file("completed-" + std::to_string(p)));
        std::size_t mine = 0;
        for (std::string id; std::getline(in, id);) {
            all.insert(id);
            ++mine;
        }
        EXPECT_GT(mine, 0U) << "process " << p << " got no work";
    }
    EXPECT_EQ(all.size(), kTasks);
    EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), kTasks) << "completed twice";
    WorkerQueue queue(config);
    queue.initialize();
    EXPECT_EQ(queue.get_queue_stats()["completed"], static_cast<std::int64_t>(kTasks));
}

// Appends one line with a single write(), so a kill never leaves half a line.
void log_line(int fd, const std::string& line) {
    const std::string with_newline = line + "\n";
    ASSERT_EQ(write(fd, with_newline.data(), with_newline.size()),
              static_cast<ssize_t>(with_newline.size()));
}

// Counts per state straight from the table, to compare with get_queue_stats.
std::map<int, std::int64_t> count_rows(const std::string& path) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "SELECT state, COUNT(*) FROM tasks GROUP BY state", -1, &stmt, nullptr);
    std::map<int, std::int64_t> out;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        out[sqlite3_column_int(stmt, 0)] = sqlite3_column_int64(stmt, 1);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

std::string integrity(const std::string& path) {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr);
    std::string out = sqlite3_step(stmt) == SQLITE_ROW
                          ? reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))
                          : "no answer";
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

TEST(SqliteCrash, KilledAtRandomMomentsLosesNoAcknowledgedWrite) {
    TempDir dir;
    QueueConfig config;
    config.database_url = dir.sqlite_url();
    const std::string log_path = dir.file("acknowledged.log");
    std::mt19937 rng(12345);
    constexpr int kRounds = 25;

    for (int round = 0; round < kRounds; ++round) {
        const pid_t child = testing::spawn([&, round] {
            const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            WorkerQueue queue(config);
            queue.initialize();
            for (int i = 0;; ++i) {
                // Enqueue a batch with known ids, then log them as acknowledged.
                std::vector<Task> batch = make_tasks(20);
                for (std::size_t k = 0; k < batch.size(); ++k) {
                    batch[k].id = "r" + std::to_string(round) + "-" + std::to_string(i) + "-" +
                                  std::to_string(k);
                }
                queue.enqueue(batch);
                for (const Task& t : batch) log_line(fd, "E " + t.id);
                // Claim and settle a few, logging each settled write.
                for (const Task& t : queue.dequeue(7)) {
                    if (t.id.back() % 2 == 0) {
                        queue.mark_as_complete(t.id, t.attempt_count);
                        log_line(fd, "C " + t.id);
                    } else {
                        queue.mark_as_retry(t.id, "crash test", t.attempt_count);
                        log_line(fd, "R " + t.id);
                    }
                }
            }
        });
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::uniform_int_distribution<int>(30, 250)(rng)));
        kill(child, SIGKILL);
        EXPECT_EQ(testing::wait_for(child), 128 + SIGKILL);
    }

    // Reopen and check every acknowledged write.
    WorkerQueue queue(config);
    queue.initialize();
    std::ifstream log(log_path);
    std::size_t enqueued = 0, completed = 0, retried = 0;
    for (std::string line; std::getline(log, line);) {
        const char kind = line[0];
        const std::string id = line.substr(2);
        const Task t = queue.get_task(id);  // throws if an acknowledged enqueue was lost
        if (kind == 'E') ++enqueued;
        if (kind == 'C') {
            ++completed;
            EXPECT_EQ(t.state, TaskState::COMPLETED) << id;
        }
        if (kind == 'R') {
            ++retried;
            EXPECT_EQ(t.state, TaskState::RETRYABLE) << id;
            EXPECT_EQ(t.last_error, "crash test");
        }
    }
    EXPECT_GT(enqueued, 0U);
    EXPECT_GT(completed + retried, 0U);
    EXPECT_EQ(integrity(dir.file("queue.db")), "ok");

    // The stats bookkeeping moved in the same transactions as the rows: none half-done.
    const auto rows = count_rows(dir.file("queue.db"));
    auto stats = queue.get_queue_stats();
    std::int64_t total = 0;
    for (TaskState s : kAllTaskStates) {
        std::string name(to_string(s));
        for (char& c : name) c = static_cast<char>(std::tolower(c));
        const auto it = rows.find(static_cast<int>(s));
        const std::int64_t actual = it == rows.end() ? 0 : it->second;
        EXPECT_EQ(stats[name], actual) << name;
        total += actual;
    }
    EXPECT_EQ(stats["total"], total);
    EXPECT_GE(static_cast<std::size_t>(total), enqueued);
}

}  // namespace
}  // namespace voxq
