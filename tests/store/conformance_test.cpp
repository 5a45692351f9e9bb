// The store conformance suite: the whole contract of SPEC §4, written once
// against the public WorkerQueue over a Store, and run against every store
// (INSTANTIATE_TEST_SUITE_P at the bottom). Time moves by the ManualClock.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "support/postgres.hpp"
#include "support/sqlite.hpp"
#include "support/tasks.hpp"
#include "support/temp_dir.hpp"
#include "voxq/queue.hpp"

namespace voxq {
namespace {

using testing::make_task;
using testing::make_tasks;
using testing::TempDir;

// A store to run the suite against: how to point a config at a fresh, empty
// database for one test, and how to clean up after it.
struct StoreTarget {
    std::string name;
    std::function<void(QueueConfig&, const TempDir&)> configure;
    bool needs_postgres = false;
    // Runs SQL on the store's database behind the queue's back (none: cannot).
    std::function<void(const QueueConfig&, const std::string&)> tamper;
};

void PrintTo(const StoreTarget& target, std::ostream* os) {
    *os << target.name;
}

class StoreConformance : public ::testing::TestWithParam<StoreTarget> {
  protected:
    void SetUp() override {
        if (GetParam().needs_postgres) VOXQ_REQUIRE_POSTGRES();
        GetParam().configure(config_, dir_);
        queue_ = std::make_unique<WorkerQueue>(config_, clock_);
        queue_->initialize();
    }
    void TearDown() override {
        if (queue_) queue_->close();
        if (GetParam().needs_postgres && !testing::pg_test_url().empty()) {
            testing::pg_exec("DROP SCHEMA IF EXISTS " + config_.postgres_schema + " CASCADE");
        }
    }

    std::string enqueue_one(Task t = make_task()) {
        std::vector<Task> v{std::move(t)};
        EXPECT_EQ(queue_->enqueue(v), 1U);
        return v[0].id;
    }
    // A task in PROCESSING, with its attempt.
    Task processing_task() {
        enqueue_one();
        auto got = queue_->dequeue(1);
        EXPECT_EQ(got.size(), 1U);
        return got.at(0);
    }
    Task task_in(TaskState state) {
        switch (state) {
            case TaskState::PENDING:
                return queue_->get_task(enqueue_one());
            case TaskState::PROCESSING:
                return processing_task();
            case TaskState::COMPLETED: {
                Task t = processing_task();
                queue_->mark_as_complete(t.id);
                return queue_->get_task(t.id);
            }
            case TaskState::RETRYABLE: {
                Task t = processing_task();
                queue_->mark_as_retry(t.id, "boom");
                return queue_->get_task(t.id);
            }
            case TaskState::CANCELLED: {
                const std::string id = enqueue_one();
                queue_->mark_as_cancelled(id);
                return queue_->get_task(id);
            }
            case TaskState::DISCARDED: {
                Task t = processing_task();
                queue_->mark_as_discarded(t.id);
                return queue_->get_task(t.id);
            }
        }
        throw std::logic_error("unreachable");
    }
    double now() const { return clock_->now_seconds(); }

    TempDir dir_;
    std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
    QueueConfig config_;
    std::unique_ptr<WorkerQueue> queue_;
};

TEST_P(StoreConformance, EnqueueFillsIdsAndTimestampsVisibleToTheCaller) {
    std::vector<Task> tasks = make_tasks(3);
    EXPECT_EQ(queue_->enqueue(tasks), 3U);
    std::set<std::string> ids;
    for (const Task& t : tasks) {
        EXPECT_EQ(t.id.size(), 26U);
        EXPECT_EQ(t.id.find_first_not_of("0123456789ABCDEFGHJKMNPQRSTVWXYZ"), std::string::npos);
        EXPECT_DOUBLE_EQ(t.created_at, now());
        EXPECT_DOUBLE_EQ(t.updated_at, now());
        EXPECT_DOUBLE_EQ(t.schedule_at, now());
        ids.insert(t.id);
        const Task stored = queue_->get_task(t.id);
        EXPECT_EQ(stored.state, TaskState::PENDING);
        EXPECT_EQ(stored.items.size(), 1U);
        EXPECT_EQ(stored.items[0].request.text, t.items[0].request.text);
        EXPECT_EQ(stored.items[0].request.voice_id, "kokoro.af_heart");
        EXPECT_EQ(stored.items[0].response_url, "https://hooks.example.com/cb");
        EXPECT_EQ(stored.attempt_count, 0);
    }
    EXPECT_EQ(ids.size(), 3U);
    // Generated ids sort in creation order, even within one millisecond.
    EXPECT_TRUE(std::is_sorted(tasks.begin(), tasks.end(),
                               [](const Task& a, const Task& b) { return a.id < b.id; }));
}

TEST_P(StoreConformance, EnqueueKeepsCallerFieldsAndTimes) {
    Task t = make_task("Bonjour", "my-task:1");
    t.queue = "fr";
    t.priority = 7;
    t.max_attempts = 5;
    t.schedule_at = now() + 30;
    t.created_at = 1000.5;
    t.items[0].request.speed = 1.5;
    t.items[0].request.format = "mp3";
    enqueue_one(t);
    const Task stored = queue_->get_task("my-task:1");
    EXPECT_EQ(stored.queue, "fr");
    EXPECT_EQ(stored.priority, 7);
    EXPECT_EQ(stored.max_attempts, 5);
    EXPECT_DOUBLE_EQ(stored.schedule_at, now() + 30);
    EXPECT_DOUBLE_EQ(stored.created_at, 1000.5);
    EXPECT_DOUBLE_EQ(stored.items[0].request.speed, 1.5);
    EXPECT_EQ(stored.items[0].request.format, "mp3");
}

TEST_P(StoreConformance, DuplicateIdFailsTheWholeBatch) {
    enqueue_one(make_task("first", "dup-1"));
    std::vector<Task> batch{make_task("a", "fresh-1"), make_task("c"), make_task("b", "dup-1")};
    EXPECT_THROW(queue_->enqueue(batch), DuplicateTaskError);
    EXPECT_TRUE(batch[1].id.empty()) << "a failed enqueue leaves the caller's tasks as they were";
    EXPECT_EQ(batch[1].created_at, 0);
    EXPECT_THROW(queue_->get_task("fresh-1"), TaskNotFoundError);
    EXPECT_EQ(queue_->get_queue_stats()["total"], 1);
    EXPECT_EQ(queue_->get_task("dup-1").items[0].request.text, "first");
}

TEST_P(StoreConformance, SameIdTwiceInOneBatchIsRefused) {
    std::vector<Task> batch{make_task("a", "same"), make_task("b", "same")};
    EXPECT_THROW(queue_->enqueue(batch), ValidationError);
    EXPECT_EQ(queue_->get_queue_stats()["total"], 0);
}

TEST_P(StoreConformance, BatchWithOneInvalidTaskStoresNothing) {
    std::vector<Task> batch = make_tasks(3);
    batch[1].items[0].response_url = "ftp://example.com/x";
    try {
        queue_->enqueue(batch);
        FAIL() << "expected ValidationError";
    } catch (const ValidationError& e) {
        EXPECT_NE(std::string(e.what()).find("task 1"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("response_url"), std::string::npos) << e.what();
    }
    EXPECT_EQ(queue_->get_queue_stats()["total"], 0);
    EXPECT_TRUE(batch[0].id.empty()) << "a failed enqueue must not fill in ids";
}

TEST_P(StoreConformance, InvalidTasksNameTheField) {
    struct Case {
        std::function<void(Task&)> spoil;
        std::string field;
    };
    const std::vector<Case> cases = {
        {[](Task& t) { t.items.clear(); }, "items"},
        {[](Task& t) { t.items[0].request.text = ""; }, "items[0].request.text"},
        {[](Task& t) { t.items[0].request.text = std::string(10'001, 'a'); }, "request.text"},
        {[](Task& t) { t.items[0].request.text = "bad \xC3\x28 utf8"; }, "request.text"},
        {[](Task& t) { t.items[0].request.voice_id = "af_heart"; }, "request.voice_id"},
        {[](Task& t) { t.items[0].request.voice_id = "Kokoro.af"; }, "request.voice_id"},
        {[](Task& t) { t.items[0].request.voice_id = "kokoro."; }, "request.voice_id"},
        {[](Task& t) { t.items[0].request.speed = 5; }, "request.speed"},
        {[](Task& t) { t.items[0].request.format = "aiff"; }, "request.format"},
        {[](Task& t) { t.items[0].response_url = "/relative"; }, "response_url"},
        {[](Task& t) { t.items[0].response_url = "http://"; }, "response_url"},
        {[](Task& t) { t.items[0].response_url = "http://host:99999/"; }, "response_url"},
        {[](Task& t) { t.items[0].response_url = "http://a b/"; }, "response_url"},
        {[](Task& t) { t.state = TaskState::PROCESSING; }, "state"},
        {[](Task& t) { t.id = "has space"; }, "id"},
        {[](Task& t) { t.id = std::string(129, 'x'); }, "id"},
        {[](Task& t) { t.queue = ""; }, "queue"},
        {[](Task& t) { t.schedule_at = -1; }, "schedule_at"},
        {[](Task& t) { t.max_attempts = -1; }, "max_attempts"},
        {[](Task& t) { t.dedup_key = std::string(300, 'k'); }, "dedup_key"},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        std::vector<Task> batch = make_tasks(2);
        cases[i].spoil(batch[1]);
        try {
            queue_->enqueue(batch);
            ADD_FAILURE() << "case " << i << " (" << cases[i].field << ") was accepted";
        } catch (const ValidationError& e) {
            const std::string message = e.what();
            EXPECT_NE(message.find("task 1: "), std::string::npos) << message;
            EXPECT_NE(message.find(cases[i].field), std::string::npos) << message;
        }
    }
    EXPECT_EQ(queue_->get_queue_stats()["total"], 0);
}

TEST_P(StoreConformance, DequeueClaimsByPriorityThenScheduleThenId) {
    std::vector<Task> batch;
    auto add = [&](const std::string& id, std::int64_t priority, double schedule_offset) {
        Task t = make_task(id, id);
        t.priority = priority;
        t.schedule_at = now() + schedule_offset;
        batch.push_back(t);
    };
    add("e", 0, -5);
    add("d", 0, -10);
    add("c", 0, -10);
    add("b", 5, 0);
    add("a", 1, -1);
    add("future", 9, 60);
    ASSERT_EQ(queue_->enqueue(batch), 6U);
    std::vector<std::string> order;
    for (int i = 0; i < 3; ++i) {
        for (const Task& t : queue_->dequeue(2)) order.push_back(t.id);
    }
    EXPECT_EQ(order, (std::vector<std::string>{"b", "a", "c", "d", "e"}));
    EXPECT_TRUE(queue_->dequeue(10).empty());
    clock_->advance_seconds(60);
    const auto later = queue_->dequeue(10);
    ASSERT_EQ(later.size(), 1U);
    EXPECT_EQ(later[0].id, "future");
}

TEST_P(StoreConformance, DequeueAcrossQueuesFollowsOneGlobalOrder) {
    std::vector<Task> batch;
    auto add = [&](const std::string& id, const std::string& queue, std::int64_t priority,
                   double schedule_offset) {
        Task t = make_task(id, id);
        t.queue = queue;
        t.priority = priority;
        t.schedule_at = now() + schedule_offset;
        batch.push_back(t);
    };
    add("a1", "alpha", 0, -3);
    add("a2", "alpha", 2, -1);
    add("b1", "beta", 2, -2);
    add("b2", "beta", 0, -4);
    add("c1", "gamma", 1, -1);
    add("c2", "gamma", 9, 100);  // not due
    ASSERT_EQ(queue_->enqueue(batch), 6U);
    std::vector<std::string> order;
    for (const Task& t : queue_->dequeue(3)) order.push_back(t.id);
    for (const Task& t : queue_->dequeue(10)) order.push_back(t.id);
    EXPECT_EQ(order, (std::vector<std::string>{"b1", "a2", "c1", "b2", "a1"}));
    const auto stats = queue_->get_queue_stats();
    EXPECT_EQ(stats.at("processing"), 5);
    EXPECT_EQ(stats.at("pending"), 1);
}

TEST_P(StoreConformance, DequeueByQueueTakesOnlyThatQueue) {
    Task a = make_task("a", "in-a");
    a.queue = "alpha";
    Task b = make_task("b", "in-b");
    b.queue = "beta";
    std::vector<Task> batch{a, b};
    queue_->enqueue(batch);
    const auto got = queue_->dequeue(10, "beta");
    ASSERT_EQ(got.size(), 1U);
    EXPECT_EQ(got[0].id, "in-b");
    EXPECT_EQ(queue_->get_queue_stats("alpha")["pending"], 1);
    EXPECT_EQ(queue_->get_queue_stats("beta")["processing"], 1);
}

TEST_P(StoreConformance, DequeueStampsTheLeaseAndCountsTheAttempt) {
    const std::string id = enqueue_one();
    clock_->advance_seconds(2);
    const auto got = queue_->dequeue();
    ASSERT_EQ(got.size(), 1U);
    EXPECT_EQ(got[0].state, TaskState::PROCESSING);
    EXPECT_EQ(got[0].attempt_count, 1);
    EXPECT_DOUBLE_EQ(got[0].heartbeat_at, now());
    EXPECT_DOUBLE_EQ(got[0].updated_at, now());
    EXPECT_TRUE(queue_->dequeue().empty()) << "one attempt is handed out once";
    EXPECT_THROW(queue_->dequeue(0), ValidationError);
    EXPECT_THROW(queue_->dequeue(100'001), ValidationError);
}

TEST_P(StoreConformance, EveryAllowedTransition) {
    {
        Task t = processing_task();
        queue_->mark_as_complete(t.id);
        EXPECT_EQ(queue_->get_task(t.id).state, TaskState::COMPLETED);
    }
    {
        Task t = processing_task();
        queue_->mark_as_retry(t.id, "Connection timeout");
        const Task after = queue_->get_task(t.id);
        EXPECT_EQ(after.state, TaskState::RETRYABLE);
        EXPECT_EQ(after.last_error, "Connection timeout");
        ASSERT_EQ(after.error_history.size(), 1U);
        EXPECT_EQ(after.error_history[0].attempt, 1);
    }
    {
        const std::string id = enqueue_one();
        queue_->mark_as_cancelled(id);
        EXPECT_EQ(queue_->get_task(id).state, TaskState::CANCELLED);
    }
    {
        Task t = processing_task();
        queue_->mark_as_discarded(t.id);
        EXPECT_EQ(queue_->get_task(t.id).state, TaskState::DISCARDED);
        clock_->advance_seconds(10);
        queue_->mark_as_resume(t.id);
        const Task resumed = queue_->get_task(t.id);
        EXPECT_EQ(resumed.state, TaskState::PENDING);
        EXPECT_EQ(resumed.attempt_count, 0);
        EXPECT_DOUBLE_EQ(resumed.schedule_at, now());
    }
}

TEST_P(StoreConformance, EveryRefusedTransitionNamesTheStates) {
    struct Op {
        const char* name;
        TaskState required;
        std::function<void(WorkerQueue&, const std::string&)> call;
    };
    const std::vector<Op> ops = {
        {"complete", TaskState::PROCESSING,
         [](WorkerQueue& q, const std::string& id) { q.mark_as_complete(id); }},
        {"retry", TaskState::PROCESSING,
         [](WorkerQueue& q, const std::string& id) { q.mark_as_retry(id, "e"); }},
        {"cancel", TaskState::PENDING,
         [](WorkerQueue& q, const std::string& id) { q.mark_as_cancelled(id); }},
        {"discard", TaskState::PROCESSING,
         [](WorkerQueue& q, const std::string& id) { q.mark_as_discarded(id); }},
        {"resume", TaskState::DISCARDED,
         [](WorkerQueue& q, const std::string& id) { q.mark_as_resume(id); }},
        {"heartbeat", TaskState::PROCESSING,
         [](WorkerQueue& q, const std::string& id) { q.heartbeat(id); }},
        {"release", TaskState::PROCESSING,
         [](WorkerQueue& q, const std::string& id) { q.release(id); }},
    };
    for (const Op& op : ops) {
        EXPECT_THROW(op.call(*queue_, "no-such-task"), TaskNotFoundError) << op.name;
        for (TaskState state : kAllTaskStates) {
            if (state == op.required) continue;
            const Task before = task_in(state);
            try {
                op.call(*queue_, before.id);
                ADD_FAILURE() << op.name << " accepted a " << to_string(state) << " task";
            } catch (const InvalidStateTransitionError& e) {
                EXPECT_EQ(e.current_state(), state);
                EXPECT_EQ(e.task_id(), before.id);
                const std::string expected = "task " + before.id + " is " +
                                             std::string(to_string(state)) + "; " + op.name +
                                             " needs " + std::string(to_string(op.required));
                EXPECT_EQ(std::string(e.what()), expected);
            }
            const Task after = queue_->get_task(before.id);
            EXPECT_EQ(after.state, before.state) << "a refused call changed the task";
            EXPECT_EQ(after.attempt_count, before.attempt_count);
            EXPECT_DOUBLE_EQ(after.updated_at, before.updated_at);
        }
    }
}

TEST_P(StoreConformance, RetrySweepBacksOffExponentiallyUpToTheCap) {
    // Defaults: base 60 s, multiplier 2, cap 3600 s; a task allowed many attempts.
    Task t = make_task("x", "backoff");
    t.max_attempts = 20;
    enqueue_one(t);
    const std::vector<double> expected = {60, 120, 240, 480, 960, 1920, 3600, 3600};
    for (std::size_t attempt = 1; attempt <= expected.size(); ++attempt) {
        auto got = queue_->dequeue(1);
        ASSERT_EQ(got.size(), 1U) << "attempt " << attempt;
        EXPECT_EQ(got[0].attempt_count, static_cast<std::int64_t>(attempt));
        queue_->mark_as_retry("backoff", "fail " + std::to_string(attempt));
        const auto moved = queue_->retry();
        ASSERT_EQ(moved.size(), 1U);
        EXPECT_EQ(moved[0].state, TaskState::PENDING);
        EXPECT_NEAR(moved[0].schedule_at - now(), expected[attempt - 1], 1e-6)
            << "attempt " << attempt;
        EXPECT_TRUE(queue_->dequeue(1).empty()) << "claimed before its backoff ended";
        clock_->advance_seconds(expected[attempt - 1]);
    }
}

TEST_P(StoreConformance, RetrySweepDiscardsAtMaxAttemptsKeepingTheError) {
    const std::string id = enqueue_one();
    for (int attempt = 1; attempt <= 3; ++attempt) {
        ASSERT_EQ(queue_->dequeue(1).size(), 1U);
        queue_->mark_as_retry(id, "HTTP 500 from webhook");
        const auto moved = queue_->retry(10, 3600, 3);
        ASSERT_EQ(moved.size(), 1U);
        EXPECT_EQ(moved[0].state, attempt < 3 ? TaskState::PENDING : TaskState::DISCARDED);
        clock_->advance_seconds(4000);
    }
    const Task t = queue_->get_task(id);
    EXPECT_EQ(t.state, TaskState::DISCARDED);
    EXPECT_EQ(t.last_error, "HTTP 500 from webhook");
    EXPECT_EQ(t.attempt_count, 3);
    EXPECT_EQ(t.error_history.size(), 3U);
    EXPECT_EQ(queue_->get_queue_stats()["discarded"], 1);
}

TEST_P(StoreConformance, ATaskWhoseLeaseKeepsExpiringIsDiscardedAsPoison) {
    // Ten attempts allowed, but a task that takes its worker down every time (the
    // lease expires with no outcome) is discarded after VOXQ_MAX_STALLS (3) stalls.
    Task t = make_task("x", "poison");
    t.max_attempts = 10;
    enqueue_one(t);
    for (int stall = 1; stall <= 3; ++stall) {
        ASSERT_EQ(queue_->dequeue(1).size(), 1U) << "stall " << stall;
        clock_->advance_seconds(101);
        const auto moved = queue_->retry(10, 100);
        ASSERT_EQ(moved.size(), 1U);
        EXPECT_EQ(moved[0].state, stall < 3 ? TaskState::PENDING : TaskState::DISCARDED);
        clock_->advance_seconds(4000);
    }
    Task poison = queue_->get_task("poison");
    EXPECT_EQ(poison.state, TaskState::DISCARDED);
    EXPECT_NE(poison.last_error.find("poison task"), std::string::npos) << poison.last_error;
    EXPECT_NE(poison.last_error.find("VOXQ_MAX_STALLS"), std::string::npos) << poison.last_error;
    // A resumed task gets its stalls back with its attempts: one more stall is
    // not the end of it, and ordinary failures never count.
    queue_->mark_as_resume("poison");
    ASSERT_EQ(queue_->dequeue(1).size(), 1U);
    clock_->advance_seconds(101);
    ASSERT_EQ(queue_->retry(10, 100).at(0).state, TaskState::PENDING);
    clock_->advance_seconds(4000);
    for (int failure = 0; failure < 3; ++failure) {
        ASSERT_EQ(queue_->dequeue(1).size(), 1U);
        queue_->mark_as_retry("poison", "HTTP 503");
        ASSERT_EQ(queue_->retry(10, 100).at(0).state, TaskState::PENDING);
        clock_->advance_seconds(4000);
    }
}

TEST_P(StoreConformance, TaskMaxAttemptsOverridesTheSweeps) {
    Task t = make_task("x", "one-shot");
    t.max_attempts = 1;
    enqueue_one(t);
    queue_->dequeue(1);
    queue_->mark_as_retry("one-shot", "nope");
    const auto moved = queue_->retry(10, 3600, 5);
    ASSERT_EQ(moved.size(), 1U);
    EXPECT_EQ(moved[0].state, TaskState::DISCARDED);
}

TEST_P(StoreConformance, ExpiredLeaseComesBackThroughTheSweep) {
    const Task t = processing_task();
    clock_->advance_seconds(99);
    EXPECT_TRUE(queue_->retry(10, 100).empty()) << "lease not yet expired";
    queue_->heartbeat(t.id, t.attempt_count);
    clock_->advance_seconds(99);
    EXPECT_TRUE(queue_->retry(10, 100).empty()) << "the heartbeat pushed the lease forward";
    clock_->advance_seconds(1);
    const auto moved = queue_->retry(10, 100);
    ASSERT_EQ(moved.size(), 1U);
    EXPECT_EQ(moved[0].state, TaskState::PENDING);
    EXPECT_EQ(moved[0].last_error, "visibility timeout expired");
    EXPECT_NEAR(moved[0].schedule_at, now() + 60, 1e-6);
    EXPECT_EQ(queue_->get_task(t.id).error_history.back().message, "visibility timeout expired");
}

TEST_P(StoreConformance, RetryAfterSetsTheEarliestNextAttempt) {
    const Task t = processing_task();
    queue_->mark_as_retry(t.id, "429", t.attempt_count, now() + 500);
    auto moved = queue_->retry();
    ASSERT_EQ(moved.size(), 1U);
    EXPECT_NEAR(moved[0].schedule_at, now() + 500, 1e-6) << "later than the 60 s backoff";

    const Task u = processing_task();
    queue_->mark_as_retry(u.id, "429", u.attempt_count, now() + 5);
    moved = queue_->retry();
    ASSERT_EQ(moved.size(), 1U);
    EXPECT_NEAR(moved[0].schedule_at, now() + 60, 1e-6) << "the backoff is later";
}

TEST_P(StoreConformance, ResumeGivesFreshAttemptsAndKeepsHistory) {
    const std::string id = enqueue_one();
    for (int i = 0; i < 3; ++i) {
        queue_->dequeue(1);
        queue_->mark_as_retry(id, "err " + std::to_string(i));
        queue_->retry();
        clock_->advance_seconds(4000);
    }
    ASSERT_EQ(queue_->get_task(id).state, TaskState::DISCARDED);
    queue_->mark_as_resume(id);
    const Task t = queue_->get_task(id);
    EXPECT_EQ(t.state, TaskState::PENDING);
    EXPECT_EQ(t.attempt_count, 0);
    EXPECT_EQ(t.error_history.size(), 3U);
    const auto again = queue_->dequeue(1);
    ASSERT_EQ(again.size(), 1U);
    EXPECT_EQ(again[0].attempt_count, 1);
}

TEST_P(StoreConformance, FencingStopsAStaleWorker) {
    const Task first = processing_task();
    EXPECT_EQ(first.attempt_count, 1);
    clock_->advance_seconds(config_.default_visibility_timeout);
    ASSERT_EQ(queue_->retry().size(), 1U);
    clock_->advance_seconds(60);
    const auto second = queue_->dequeue(1);
    ASSERT_EQ(second.size(), 1U);
    EXPECT_EQ(second[0].attempt_count, 2);
    // The first worker wakes up and tries to settle its (expired) attempt.
    for (auto call : std::vector<std::function<void()>>{
             [&] { queue_->mark_as_complete(first.id, 1); },
             [&] { queue_->mark_as_retry(first.id, "late", 1); },
             [&] { queue_->mark_as_discarded(first.id, 1); },
             [&] { queue_->heartbeat(first.id, 1); }, [&] { queue_->release(first.id, 1); },
             [&] { queue_->mark_item_delivered(first.id, 0, 1); }}) {
        try {
            call();
            ADD_FAILURE() << "a stale attempt was accepted";
        } catch (const InvalidStateTransitionError& e) {
            EXPECT_EQ(e.current_state(), TaskState::PROCESSING);
            EXPECT_NE(std::string(e.what()).find("attempt 2"), std::string::npos) << e.what();
        }
    }
    EXPECT_EQ(queue_->get_task(first.id).state, TaskState::PROCESSING);
    queue_->mark_as_complete(first.id, 2);
    EXPECT_EQ(queue_->get_task(first.id).state, TaskState::COMPLETED);
}

TEST_P(StoreConformance, ItemProgressSurvivesRetriesAndNeverGoesBack) {
    Task three = make_task("three items");
    three.items.push_back(three.items[0]);
    three.items.push_back(three.items[0]);
    std::vector<Task> batch{three};
    queue_->enqueue(batch);
    const std::string id = batch[0].id;
    EXPECT_EQ(queue_->get_task(id).items_delivered, 0);
    const Task first = queue_->dequeue(1).at(0);
    EXPECT_EQ(first.items_delivered, 0);
    clock_->advance_seconds(30);
    queue_->mark_item_delivered(id, 0, first.attempt_count);
    queue_->mark_item_delivered(id, 1, first.attempt_count);
    Task now_task = queue_->get_task(id);
    EXPECT_EQ(now_task.items_delivered, 2);
    EXPECT_DOUBLE_EQ(now_task.heartbeat_at, now()) << "progress is also a heartbeat";
    queue_->mark_item_delivered(id, 0, first.attempt_count);  // a late duplicate
    EXPECT_EQ(queue_->get_task(id).items_delivered, 2) << "progress went back";

    // The next attempt, and a resume after a discard, carry on after item 1.
    queue_->mark_as_retry(id, "item 2: HTTP 500", first.attempt_count);
    queue_->retry();
    clock_->advance_seconds(60);
    const Task second = queue_->dequeue(1).at(0);
    EXPECT_EQ(second.attempt_count, 2);
    EXPECT_EQ(second.items_delivered, 2);
    // A stale attempt cannot record progress; nor can a task that is not PROCESSING.
    EXPECT_THROW(queue_->mark_item_delivered(id, 2, first.attempt_count),
                 InvalidStateTransitionError);
    queue_->mark_as_discarded(id, second.attempt_count, "item 2: HTTP 404");
    EXPECT_THROW(queue_->mark_item_delivered(id, 2), InvalidStateTransitionError);
    EXPECT_THROW(queue_->mark_item_delivered("no-such-task", 0), TaskNotFoundError);
    EXPECT_THROW(queue_->mark_item_delivered(id, -1), ValidationError);
    queue_->mark_as_resume(id);
    EXPECT_EQ(queue_->dequeue(1).at(0).items_delivered, 2);
    queue_->mark_item_delivered(id, 2);
    queue_->mark_as_complete(id);
    const Task done = queue_->get_task(id);
    EXPECT_EQ(done.state, TaskState::COMPLETED);
    EXPECT_EQ(done.items_delivered, 3);
}

TEST_P(StoreConformance, ReleaseGivesTheAttemptBack) {
    const Task t = processing_task();
    clock_->advance_seconds(5);
    queue_->release(t.id, t.attempt_count);
    const Task after = queue_->get_task(t.id);
    EXPECT_EQ(after.state, TaskState::PENDING);
    EXPECT_EQ(after.attempt_count, 0);
    EXPECT_DOUBLE_EQ(after.schedule_at, now());
    EXPECT_EQ(queue_->dequeue(1).at(0).attempt_count, 1);
}

TEST_P(StoreConformance, DedupKeyStoresOneTaskPerQueue) {
    Task a = make_task("first");
    a.dedup_key = "order-42";
    std::vector<Task> first{a};
    EXPECT_EQ(queue_->enqueue(first), 1U);
    Task b = make_task("second");
    b.dedup_key = "order-42";
    Task c = make_task("third");
    c.dedup_key = "order-42";
    c.queue = "other";
    std::vector<Task> second{b, c};
    EXPECT_EQ(queue_->enqueue(second), 1U) << "only the task in the other queue is new";
    EXPECT_EQ(second[0].id, first[0].id) << "the existing task's id is filled in";
    EXPECT_NE(second[1].id, first[0].id);
    EXPECT_EQ(queue_->get_task(first[0].id).items[0].request.text, "first");
    EXPECT_EQ(queue_->get_queue_stats()["total"], 2);
    // Two of the same key within one batch: one stored.
    Task d = make_task("d");
    d.dedup_key = "k2";
    std::vector<Task> third{d, d};
    EXPECT_EQ(queue_->enqueue(third), 1U);
    EXPECT_EQ(third[0].id, third[1].id);
}

TEST_P(StoreConformance, StatsCountEveryStateAndAddUp) {
    for (TaskState s : kAllTaskStates) task_in(s);
    task_in(TaskState::PENDING);
    auto stats = queue_->get_queue_stats();
    EXPECT_EQ(stats.size(), 7U);
    EXPECT_EQ(stats["pending"], 2);
    EXPECT_EQ(stats["processing"], 1);
    EXPECT_EQ(stats["completed"], 1);
    EXPECT_EQ(stats["retryable"], 1);
    EXPECT_EQ(stats["cancelled"], 1);
    EXPECT_EQ(stats["discarded"], 1);
    EXPECT_EQ(stats["total"], 7);
    const auto empty = queue_->get_queue_stats("no-such-queue");
    EXPECT_EQ(empty.at("total"), 0);
    EXPECT_EQ(empty.at("pending"), 0);
}

TEST_P(StoreConformance, OverviewGivesEachQueuesCountsAndOldestDueAge) {
    EXPECT_TRUE(queue_->queue_overview().empty());
    Task due = make_task("due now");
    due.queue = "alpha";
    Task later = make_task("due later");
    later.queue = "alpha";
    later.schedule_at = now() + 3600;
    Task busy = make_task("busy");
    busy.queue = "beta";
    std::vector<Task> batch{due, later, busy};
    queue_->enqueue(batch);
    ASSERT_EQ(queue_->dequeue(1, "beta").size(), 1U);
    clock_->advance_seconds(30);
    const auto overview = queue_->queue_overview();
    ASSERT_EQ(overview.size(), 2U);
    EXPECT_EQ(overview[0].queue, "alpha");
    EXPECT_EQ(overview[0].stats.at("pending"), 2);
    EXPECT_EQ(overview[0].stats.at("total"), 2);
    ASSERT_TRUE(overview[0].oldest_due_age.has_value());
    EXPECT_NEAR(*overview[0].oldest_due_age, 30, 1e-6) << "the task due later is not due";
    EXPECT_EQ(overview[1].queue, "beta");
    EXPECT_EQ(overview[1].stats.at("processing"), 1);
    EXPECT_FALSE(overview[1].oldest_due_age.has_value());
}

TEST_P(StoreConformance, ListPagesWithoutGapsOrRepeats) {
    std::vector<Task> tasks = make_tasks(257);
    queue_->enqueue(tasks);
    for (int i = 0; i < 10; ++i)
        queue_->mark_as_cancelled(tasks[static_cast<std::size_t>(i) * 3].id);
    std::vector<std::string> seen;
    std::string cursor;
    int pages = 0;
    do {
        const TaskPage page = queue_->list_tasks({}, 50, cursor);
        for (const Task& t : page.tasks) seen.push_back(t.id);
        cursor = page.next_cursor;
        ++pages;
    } while (!cursor.empty());
    EXPECT_EQ(pages, 6);
    ASSERT_EQ(seen.size(), 257U);
    EXPECT_TRUE(std::is_sorted(seen.rbegin(), seen.rend())) << "newest first";
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 257U);

    const TaskPage cancelled = queue_->list_tasks({TaskState::CANCELLED, ""}, 100);
    EXPECT_EQ(cancelled.tasks.size(), 10U);
    EXPECT_TRUE(cancelled.next_cursor.empty());
    for (const Task& t : cancelled.tasks) EXPECT_EQ(t.state, TaskState::CANCELLED);
    EXPECT_THROW(queue_->list_tasks({}, 0), ValidationError);
}

TEST_P(StoreConformance, ListByEachStateFindsExactlyThatState) {
    // (task_in(PROCESSING) may leave another task PENDING, so bucket every
    // stored task by the state get_task reports.)
    for (int round = 0; round < 3; ++round) {
        for (TaskState s : kAllTaskStates) task_in(s);
    }
    task_in(TaskState::PENDING);
    std::map<TaskState, std::set<std::string>> expected;
    const TaskPage all = queue_->list_tasks({}, 1000);
    ASSERT_TRUE(all.next_cursor.empty());
    for (const Task& t : all.tasks) expected[queue_->get_task(t.id).state].insert(t.id);
    for (TaskState s : kAllTaskStates) ASSERT_FALSE(expected[s].empty()) << to_string(s);
    for (TaskState s : kAllTaskStates) {
        std::set<std::string> got;
        std::string cursor;
        do {
            const TaskPage page = queue_->list_tasks({s, ""}, 2, cursor);
            for (const Task& t : page.tasks) {
                EXPECT_EQ(t.state, s);
                got.insert(t.id);
            }
            cursor = page.next_cursor;
        } while (!cursor.empty());
        EXPECT_EQ(got, expected[s]) << to_string(s);
    }
    EXPECT_TRUE(queue_->list_tasks({TaskState::PENDING, "no-such-queue"}).tasks.empty());
}

TEST_P(StoreConformance, PurgeDeletesOldFinishedTasksOnly) {
    const Task done = task_in(TaskState::COMPLETED);
    const Task cancelled = task_in(TaskState::CANCELLED);
    clock_->advance_seconds(3600);
    const Task recent = task_in(TaskState::COMPLETED);
    const Task pending = task_in(TaskState::PENDING);
    EXPECT_EQ(queue_->purge({TaskState::COMPLETED, TaskState::CANCELLED}, 1800), 2);
    EXPECT_THROW(queue_->get_task(done.id), TaskNotFoundError);
    EXPECT_THROW(queue_->get_task(cancelled.id), TaskNotFoundError);
    EXPECT_EQ(queue_->get_task(recent.id).state, TaskState::COMPLETED);
    EXPECT_EQ(queue_->get_task(pending.id).state, TaskState::PENDING);
    auto stats = queue_->get_queue_stats();
    EXPECT_EQ(stats["completed"], 1);
    EXPECT_EQ(stats["total"], 2);
    EXPECT_THROW(queue_->purge({TaskState::PENDING}, 0), ValidationError);
    const Task discarded = task_in(TaskState::DISCARDED);
    EXPECT_EQ(queue_->purge({TaskState::DISCARDED}, 0), 1);
    EXPECT_THROW(queue_->get_task(discarded.id), TaskNotFoundError);
}

TEST_P(StoreConformance, ErrorHistoryIsBounded) {
    Task t = make_task("x", "noisy");
    t.max_attempts = 100;
    enqueue_one(t);
    for (int i = 0; i < 15; ++i) {
        queue_->dequeue(1);
        queue_->mark_as_retry("noisy", "error " + std::to_string(i));
        queue_->retry();
        clock_->advance_seconds(4000);
    }
    const Task got = queue_->get_task("noisy");
    ASSERT_EQ(got.error_history.size(), static_cast<std::size_t>(config_.error_history_limit));
    EXPECT_EQ(got.error_history.back().message, "error 14");
    EXPECT_EQ(got.error_history.front().message, "error 5");
    EXPECT_EQ(got.error_history.back().attempt, 15);
}

TEST_P(StoreConformance, ConcurrentCompletionsOfTheSameTasksSucceedOncePerTask) {
    // 16 threads complete the same 200 tasks at once (so writes group up), a
    // quarter of them with a stale attempt: each task is completed exactly once,
    // every other call is refused, and the stale ones are always refused.
    std::vector<Task> tasks = make_tasks(200);
    queue_->enqueue(tasks);
    const auto claimed = queue_->dequeue(200);
    ASSERT_EQ(claimed.size(), 200U);
    std::atomic<int> wins = 0, refusals = 0, stale_wins = 0;
    std::vector<std::thread> pool;
    for (int i = 0; i < 16; ++i) {
        pool.emplace_back([&, i] {
            const bool stale = i % 4 == 3;
            for (const Task& t : claimed) {
                try {
                    queue_->mark_as_complete(t.id, stale ? t.attempt_count + 1 : t.attempt_count);
                    ++(stale ? stale_wins : wins);
                } catch (const InvalidStateTransitionError&) {
                    ++refusals;
                }
            }
        });
    }
    for (auto& t : pool) t.join();
    EXPECT_EQ(wins.load(), 200);
    EXPECT_EQ(stale_wins.load(), 0);
    EXPECT_EQ(refusals.load(), 16 * 200 - 200);
    const auto stats = queue_->get_queue_stats();
    EXPECT_EQ(stats.at("completed"), 200);
    EXPECT_EQ(stats.at("processing"), 0);
}

TEST_P(StoreConformance, IdleWorkersAreWokenByNewWork) {
    // No "nothing arrived yet" check here: a spurious wake-up is allowed by the
    // contract, and PostgreSQL's LISTEN thread sends one when it (re)connects,
    // which may land after the epoch was read (it failed a fresh CI run once).
    const std::uint64_t epoch = queue_->work_epoch();
    std::thread producer([&] { enqueue_one(); });
    // Far longer than the enqueue takes: returns as soon as the work is there.
    EXPECT_TRUE(queue_->wait_for_work(epoch, 60));
    producer.join();
    EXPECT_EQ(queue_->dequeue().size(), 1U);
    // Work that arrived between reading the epoch and waiting is not missed.
    const std::uint64_t before = queue_->work_epoch();
    enqueue_one();
    EXPECT_TRUE(queue_->wait_for_work(before, 0));
}

TEST_P(StoreConformance, UseBeforeInitializeOrAfterCloseIsRefused) {
    WorkerQueue fresh(config_, clock_);
    EXPECT_THROW(fresh.get_queue_stats(), QueueError);
    const std::string id = enqueue_one();
    queue_->close();
    queue_->close();  // idempotent
    EXPECT_THROW(queue_->get_queue_stats(), QueueError);
    EXPECT_THROW(queue_->dequeue(), QueueError);
    EXPECT_THROW(queue_->mark_as_cancelled(id), QueueError);
}

TEST_P(StoreConformance, CheckIsCleanInEveryStateAndNamesWhatWasTamperedWith) {
    for (TaskState state : kAllTaskStates) (void)task_in(state);
    Task progressing = processing_task();
    queue_->mark_item_delivered(progressing.id, 0, progressing.attempt_count);
    queue_->retry(100);  // sweeps the RETRYABLE one
    EXPECT_TRUE(queue_->check_store().empty());
    EXPECT_EQ(queue_->store_damage(), "");
    if (!GetParam().tamper) GTEST_SKIP() << "this store cannot be changed from outside";
    GetParam().tamper(config_,
                      "UPDATE task_counts SET n = n + 3 WHERE state = 0; "
                      "UPDATE tasks SET heartbeat_at = 0 WHERE id = '" +
                          progressing.id + "'");
    const std::vector<StoreFinding> findings = queue_->check_store();
    ASSERT_EQ(findings.size(), 2U);
    EXPECT_EQ(findings[0].kind, "counters");
    EXPECT_NE(findings[0].detail.find("queue \"default\" PENDING: the counter says"),
              std::string::npos)
        << findings[0].detail;
    EXPECT_EQ(findings[1].kind, "state");
    EXPECT_NE(findings[1].detail.find("1 task(s) with PROCESSING without a lease"),
              std::string::npos)
        << findings[1].detail;
    EXPECT_NE(findings[1].detail.find(progressing.id), std::string::npos);
}

// RPM 120: 2 requests a second, a burst of 5; CPM 240: 4 characters a second,
// a burst of 10.
TEST_P(StoreConformance, RateLimitsGrantTheBurstThenTheRateAndTakeAllOrNothing) {
    const RateLimit requests{120, 0};
    for (int i = 0; i < 5; ++i) EXPECT_EQ(queue_->take_capacity("engine:a", requests, 0), 0) << i;
    EXPECT_NEAR(queue_->take_capacity("engine:a", requests, 0), 0.5, 1e-6);
    EXPECT_EQ(queue_->take_capacity("engine:b", requests, 0), 0) << "budgets are per name";
    clock_->advance_seconds(0.25);
    EXPECT_NEAR(queue_->take_capacity("engine:a", requests, 0), 0.25, 1e-6);
    clock_->advance_seconds(0.25);
    EXPECT_EQ(queue_->take_capacity("engine:a", requests, 0), 0);
    clock_->advance_seconds(3600);  // refills up to the burst, no further
    for (int i = 0; i < 5; ++i) EXPECT_EQ(queue_->take_capacity("engine:a", requests, 0), 0) << i;
    EXPECT_GT(queue_->take_capacity("engine:a", requests, 0), 0);

    const RateLimit both{120, 240};
    EXPECT_EQ(queue_->take_capacity("engine:c", both, 8), 0);  // 4 requests, 2 characters left
    EXPECT_NEAR(queue_->take_capacity("engine:c", both, 5), 0.75, 1e-6);
    // The refused take paid nothing: after 0.75 s the requests are full again
    // (5) and the characters 5, so this and four more requests go.
    clock_->advance_seconds(0.75);
    EXPECT_EQ(queue_->take_capacity("engine:c", both, 5), 0);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(queue_->take_capacity("engine:c", both, 0), 0) << i;
    EXPECT_GT(queue_->take_capacity("engine:c", both, 0), 0);

    // A text longer than the burst goes from a full bucket and leaves a debt.
    EXPECT_EQ(queue_->take_capacity("engine:d", RateLimit{0, 240}, 50), 0);
    EXPECT_NEAR(queue_->take_capacity("engine:d", RateLimit{0, 240}, 1), 41.0 / 4, 1e-6);

    // No limit: nothing to take, nothing written.
    EXPECT_EQ(queue_->take_capacity("engine:e", RateLimit{}, 1000), 0);
}

// A bucket row written by someone else (a crashed or hostile process, an edit):
// tokens far above the burst grant no more than the burst, and a time far in
// the future refills nothing rather than going negative or overflowing.
TEST_P(StoreConformance, ATamperedRateBucketGrantsNoMoreThanTheBurst) {
    if (!GetParam().tamper) GTEST_SKIP() << "this store cannot be changed from outside";
    const RateLimit limit{120, 0};                              // burst 5
    EXPECT_EQ(queue_->take_capacity("engine:t", limit, 0), 0);  // creates the row
    GetParam().tamper(config_, "UPDATE rate_buckets SET tokens = 1e300");
    int granted = 0;
    for (int i = 0; i < 10; ++i) granted += queue_->take_capacity("engine:t", limit, 0) == 0;
    EXPECT_EQ(granted, 5);
    // Stamped far in the future: it restarts full at our time (one burst), then
    // the rate applies, never stuck until the stamp.
    GetParam().tamper(config_,
                      "UPDATE rate_buckets SET tokens = 0, updated_at = 9000000000000000000");
    granted = 0;
    for (int i = 0; i < 10; ++i) granted += queue_->take_capacity("engine:t", limit, 0) == 0;
    EXPECT_EQ(granted, 5);
    EXPECT_NEAR(queue_->take_capacity("engine:t", limit, 0), 0.5, 1e-6);
    clock_->advance_seconds(0.5);
    EXPECT_EQ(queue_->take_capacity("engine:t", limit, 0), 0)
        << "the bucket stayed stuck at the future time";
}

TEST_P(StoreConformance, RateLimitInputsOutOfRangeAreRefusedByName) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (const RateLimit& bad : {RateLimit{-1, 0}, RateLimit{nan, 0}, RateLimit{0, 1e13},
                                 RateLimit{0, std::numeric_limits<double>::infinity()}}) {
        try {
            (void)queue_->take_capacity("engine:a", bad, 1);
            ADD_FAILURE() << "accepted " << bad.requests_per_minute << "/"
                          << bad.characters_per_minute;
        } catch (const ValidationError& e) {
            EXPECT_NE(std::string(e.what()).find("per minute"), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW((void)queue_->take_capacity("", RateLimit{60, 0}, 1), ValidationError);
    EXPECT_THROW((void)queue_->take_capacity(std::string(201, 'x'), RateLimit{60, 0}, 1),
                 ValidationError);
    EXPECT_THROW((void)queue_->take_capacity("engine:a", RateLimit{60, 0}, -1), ValidationError);
    // None of them took anything: the whole burst (60/24 = 2.5) is still there.
    EXPECT_EQ(queue_->take_capacity("engine:a", RateLimit{60, 0}, 1), 0);
    EXPECT_EQ(queue_->take_capacity("engine:a", RateLimit{60, 0}, 1), 0);
    EXPECT_GT(queue_->take_capacity("engine:a", RateLimit{60, 0}, 1), 0);
}

// Many takers at one instant, each through its own queue (own connections) where
// the store allows: exactly the burst is granted, however they interleave, the
// bucket's first use included.
TEST_P(StoreConformance, RacingTakersAtOneInstantShareExactlyTheBurst) {
    const bool shared_memory = config_.database_url == "sqlite:///:memory:";
    constexpr int kThreads = 6;
    constexpr int kTakesEach = 20;
    const RateLimit limit{2400, 0};  // a burst of 100
    std::vector<std::unique_ptr<WorkerQueue>> queues;
    for (int i = 0; i < kThreads && !shared_memory; ++i) {
        queues.push_back(std::make_unique<WorkerQueue>(config_, clock_));
        queues.back()->initialize();
    }
    std::atomic<int> granted = 0;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        WorkerQueue& q = shared_memory ? *queue_ : *queues[static_cast<std::size_t>(t)];
        threads.emplace_back([&q, &granted, &limit] {
            for (int i = 0; i < kTakesEach; ++i) {
                if (q.take_capacity("engine:race", limit, 0) == 0) ++granted;
            }
        });
    }
    for (auto& t : threads) t.join();
    for (auto& q : queues) q->close();
    EXPECT_EQ(granted.load(), 100);
}

INSTANTIATE_TEST_SUITE_P(
    Sqlite, StoreConformance,
    ::testing::Values(
        StoreTarget{
            "SqliteFile", [](QueueConfig& c, const TempDir& d) { c.database_url = d.sqlite_url(); },
            false,
            [](const QueueConfig& c, const std::string& sql) { testing::sqlite_exec(c, sql); }},
        StoreTarget{"SqliteMemory",
                    [](QueueConfig& c, const TempDir&) { c.database_url = "sqlite:///:memory:"; },
                    false, nullptr}),
    [](const ::testing::TestParamInfo<StoreTarget>& target) { return target.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Postgres, StoreConformance,
    ::testing::Values(StoreTarget{"Postgres",
                                  [](QueueConfig& c, const TempDir&) {
                                      c.database_url = testing::pg_test_url();
                                      c.postgres_schema = testing::fresh_schema();
                                  },
                                  true,
                                  [](const QueueConfig& c, const std::string& sql) {
                                      testing::pg_exec("SET search_path TO " + c.postgres_schema +
                                                       "; " + sql);
                                  }}),
    [](const ::testing::TestParamInfo<StoreTarget>& target) { return target.param.name; });

}  // namespace
}  // namespace voxq
