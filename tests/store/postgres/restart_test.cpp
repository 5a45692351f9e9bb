// The PostgreSQL server restarted in the middle of a drain. Its own test
// program, run alone (RUN_SERIAL): the restart would break every other test
// using the server at that moment.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <set>
#include <thread>

#include "support/drain.hpp"
#include "support/postgres.hpp"
#include "support/tasks.hpp"
#include "voxq/queue.hpp"

namespace voxq {
namespace {

using testing::make_tasks;

using PostgresRestart = testing::PostgresSchemaTest;

TEST_F(PostgresRestart, ServerRestartDuringADrainLosesNothing) {
    const char* restart = std::getenv("VOXQ_TEST_PG_RESTART");
    if (restart == nullptr) GTEST_SKIP() << "VOXQ_TEST_PG_RESTART is not set";
    constexpr std::size_t kTasks = 8'000;
    WorkerQueue queue(config_);
    queue.initialize();
    for (std::size_t n = 0; n < kTasks; n += 1000) {
        std::vector<Task> batch = make_tasks(1000);
        ASSERT_EQ(queue.enqueue(batch), 1000U);
    }

    std::atomic<std::size_t> done = 0;
    std::thread restarter([&] {
        while (done.load() < 1000) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        EXPECT_EQ(std::system(restart), 0);
    });
    testing::DrainOptions options = testing::with_threads(4);
    options.idle_rounds = 20;
    options.on_complete = [&](const std::string&) { ++done; };
    auto drained = testing::drain(queue, options);
    restarter.join();
    EXPECT_GT(drained.store_errors, 0) << "the restart was not noticed";

    // Claims whose answer was lost with the connection are stranded PROCESSING:
    // the sweep brings them back, and a second drain finishes them.
    config_.retry_base_delay = 0;
    WorkerQueue sweeper(config_);
    sweeper.initialize();
    sweeper.retry(100'000, 0.000001);
    const auto second = testing::drain(queue, testing::with_threads(4));

    auto stats = queue.get_queue_stats();
    EXPECT_EQ(stats["completed"], static_cast<std::int64_t>(kTasks)) << "a task was lost";
    EXPECT_EQ(stats["total"], static_cast<std::int64_t>(kTasks));
    std::vector<std::string> all = drained.completed;
    all.insert(all.end(), second.completed.begin(), second.completed.end());
    EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size())
        << "one task completed twice by live workers";
}

}  // namespace
}  // namespace voxq
