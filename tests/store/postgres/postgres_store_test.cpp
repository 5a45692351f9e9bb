// What is particular to the PostgreSQL store, against a real server: many worker
// processes, a worker killed mid-drain, the server restarted mid-drain, and
// migrations racing.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <set>
#include <thread>

#include "support/drain.hpp"
#include "support/postgres.hpp"
#include "support/processes.hpp"
#include "support/tasks.hpp"
#include "support/temp_dir.hpp"
#include "voxq/queue.hpp"
#include "voxq/store.hpp"

namespace voxq {
namespace {

using testing::make_tasks;
using testing::TempDir;

class PostgresStore : public testing::PostgresSchemaTest {
  protected:
    void enqueue(WorkerQueue& queue, std::size_t n) {
        for (std::size_t done = 0; done < n; done += 1000) {
            std::vector<Task> batch = make_tasks(std::min<std::size_t>(1000, n - done));
            ASSERT_EQ(queue.enqueue(batch), batch.size());
        }
    }

    // Every id in the files `prefix-0..count-1`, one per line.
    std::multiset<std::string> read_ids(const std::string& prefix, int count) {
        std::multiset<std::string> ids;
        for (int p = 0; p < count; ++p) {
            std::ifstream in(dir_.file(prefix + "-" + std::to_string(p)));
            for (std::string id; std::getline(in, id);) ids.insert(id);
        }
        return ids;
    }

    TempDir dir_;
};

TEST_F(PostgresStore, FourProcessesOfFourThreadsCompleteEachTaskExactlyOnce) {
    constexpr std::size_t kTasks = 50'000;
    {
        WorkerQueue queue(config_);
        queue.initialize();
        enqueue(queue, kTasks);
    }
    std::vector<pid_t> children;
    for (int p = 0; p < 4; ++p) {
        children.push_back(testing::spawn([&, p] {
            WorkerQueue queue(config_);
            queue.initialize();
            const auto drained = testing::drain(queue, testing::with_threads(4));
            std::ofstream out(dir_.file("completed-" + std::to_string(p)));
            for (const std::string& id : drained.completed) out << id << "\n";
            if (drained.dequeued != static_cast<std::int64_t>(drained.completed.size())) {
                throw std::runtime_error("dequeued and completed differ");
            }
        }));
    }
    for (pid_t pid : children) EXPECT_EQ(testing::wait_for(pid), 0);
    const auto ids = read_ids("completed", 4);
    EXPECT_EQ(ids.size(), kTasks);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), kTasks) << "completed twice";
    WorkerQueue queue(config_);
    queue.initialize();
    auto stats = queue.get_queue_stats();
    EXPECT_EQ(stats["completed"], static_cast<std::int64_t>(kTasks));
    EXPECT_EQ(stats["total"], static_cast<std::int64_t>(kTasks));
}

TEST_F(PostgresStore, AKilledWorkersTasksComeBackThroughTheSweep) {
    constexpr std::size_t kTasks = 6'000;
    {
        WorkerQueue queue(config_);
        queue.initialize();
        enqueue(queue, kTasks);
    }
    // Each worker logs a completion only once mark_as_complete has returned.
    auto worker = [&](int p) {
        return testing::spawn([&, p] {
            WorkerQueue queue(config_);
            queue.initialize();
            std::ofstream out(dir_.file("completed-" + std::to_string(p)));
            testing::DrainOptions options = testing::with_threads(2);
            options.on_complete = [&](const std::string& id) {
                static std::mutex mu;
                std::lock_guard lock(mu);
                out << id << "\n" << std::flush;
            };
            testing::drain(queue, options);
        });
    };
    std::vector<pid_t> live;
    const pid_t victim = worker(0);
    for (int p = 1; p < 3; ++p) live.push_back(worker(p));
    // Kill the victim once it is well into its share.
    for (int i = 0; i < 2000 && read_ids("completed", 1).size() < 300; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    kill(victim, SIGKILL);
    EXPECT_EQ(testing::wait_for(victim), 128 + SIGKILL);
    for (pid_t pid : live) EXPECT_EQ(testing::wait_for(pid), 0);

    // The live workers are done; what is still PROCESSING was the victim's.
    // (Queues are closed before the next fork: a child must not inherit their
    // threads.)
    {
        config_.retry_base_delay = 0;  // due again at once
        WorkerQueue sweeper(config_);
        sweeper.initialize();
        const std::int64_t stranded = sweeper.get_queue_stats()["processing"];
        EXPECT_GT(stranded, 0) << "the victim held no tasks when it died";
        const auto moved = sweeper.retry(100'000, /*visibility_timeout=*/0.000001);
        EXPECT_EQ(static_cast<std::int64_t>(moved.size()), stranded);
        for (const Task& t : moved) {
            EXPECT_EQ(t.state, TaskState::PENDING);
            EXPECT_EQ(t.last_error, "visibility timeout expired");
        }
    }
    // A fresh worker finishes them.
    const pid_t finisher = worker(3);
    EXPECT_EQ(testing::wait_for(finisher), 0);

    WorkerQueue queue(config_);
    queue.initialize();
    // Every task completed; no task completed twice. (The victim may have died
    // between a completion and its log line: at most one per thread.)
    EXPECT_EQ(queue.get_queue_stats()["completed"], static_cast<std::int64_t>(kTasks));
    const auto ids = read_ids("completed", 4);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size())
        << "a task was completed twice";
    EXPECT_GE(ids.size(), kTasks - 2);
}

TEST_F(PostgresStore, WorkAddedByAnotherProcessWakesIdleWorkers) {
    WorkerQueue worker(config_);
    worker.initialize();
    WorkerQueue producer(config_);  // its own store and connections: only the server links them
    producer.initialize();
    // The listener signals once when it starts LISTENing (epoch 0 -> 1): after
    // that, only a notification can end a wait early.
    ASSERT_TRUE(worker.wait_for_work(0, 30)) << "the listener never started";
    const std::uint64_t epoch = worker.work_epoch();
    std::thread enqueue([&] {
        std::vector<Task> batch = make_tasks(1);
        producer.enqueue(batch);
    });
    // True only if woken: a timeout returns false.
    EXPECT_TRUE(worker.wait_for_work(epoch, 30)) << "no NOTIFY arrived";
    enqueue.join();
    EXPECT_EQ(worker.dequeue().size(), 1U);
}

TEST_F(PostgresStore, ProcessesMigratingAtOnceApplyEachMigrationOnce) {
    std::vector<pid_t> children;
    for (int i = 0; i < 4; ++i) {
        children.push_back(testing::spawn([&] {
            WorkerQueue queue(config_);
            queue.initialize();
            std::vector<Task> t = make_tasks(10);
            queue.enqueue(t);
        }));
    }
    for (pid_t pid : children) EXPECT_EQ(testing::wait_for(pid), 0);
    WorkerQueue queue(config_);
    queue.initialize();
    EXPECT_EQ(queue.get_queue_stats()["total"], 40);
    EXPECT_EQ(open_store(config_)->schema_version(), 4);
}

TEST_F(PostgresStore, UnreachableServerIsARetryableStoreErrorWithoutThePassword) {
    config_.database_url = "postgresql://voxq:s3cret@127.0.0.1:1/none?connect_timeout=2";
    WorkerQueue queue(config_);
    try {
        queue.initialize();
        FAIL() << "connected to nothing";
    } catch (const StoreError& e) {
        EXPECT_TRUE(e.retryable());
        EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace voxq
