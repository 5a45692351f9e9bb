// The executor half of the worker on its own: a fake engine and a fake sender,
// no store and no HTTP, so every outcome and the exact deliveries can be read.
#include "worker/task_processor.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace voxq {
namespace {

using detail::TaskOutcome;
using Kind = TaskOutcome::Kind;

// Speaks a fixed tone; each call can throw or move the clock, as a test says.
WebhookOutcome answer(WebhookOutcome::Kind kind, std::string message = "") {
    WebhookOutcome out;
    out.kind = kind;
    out.message = std::move(message);
    return out;
}

class FakeEngine final : public SpeechEngine {
  public:
    std::function<void(const TextToSpeechRequest&)> before;  // may throw
    std::vector<std::string> texts;

    Audio synthesize(const TextToSpeechRequest& request) override {
        texts.push_back(request.text);
        if (before) before(request);
        Audio audio{16000, std::vector<std::int16_t>(1600, 1000)};
        return audio;
    }
    std::vector<std::string> voices() override { return {"fake"}; }
};

class TaskProcessorTest : public ::testing::Test {
  protected:
    TaskOutcome run(const Task& task, detail::ProcessorSettings settings = {}) {
        const detail::TaskProcessor processor(
            engine_,
            [&](const Task& t, std::size_t item, ItemAudio audio, std::int64_t at) {
                if (on_deliver_) on_deliver_(item);
                // As a raw delivery: the audio and the voxq-* headers are readable.
                sent_.push_back(delivery_request(t, item, std::move(audio), WebhookPayload::Raw,
                                                 static_cast<double>(at)));
                timestamps_.push_back(at);
                return answers_.empty() ? answer(WebhookOutcome::Kind::Delivered) : next_answer();
            },
            clock_, settings, counters_);
        return processor.run(task, [&](std::int64_t item) {
            recorded_.push_back(item);
            return !lose_lease_;
        });
    }
    WebhookOutcome next_answer() {
        WebhookOutcome out = answers_.front();
        answers_.erase(answers_.begin());
        return out;
    }
    static Task task_of(std::size_t items, std::int64_t attempt = 1) {
        Task t;
        t.id = "01TASK";
        t.attempt_count = attempt;
        for (std::size_t i = 0; i < items; ++i) {
            t.items.push_back(TaskItem{{"text " + std::to_string(i), "fake.voice", 1.0, "wav"},
                                       "https://hooks.example.com/" + std::to_string(i)});
        }
        return t;
    }

    std::shared_ptr<FakeEngine> engine_ = std::make_shared<FakeEngine>();
    ManualClock clock_;
    WorkerCounters counters_;
    std::vector<WebhookOutcome> answers_;  // empty: every delivery succeeds
    std::vector<WebhookRequest> sent_;
    std::vector<std::int64_t> timestamps_;
    std::vector<std::int64_t> recorded_;
    bool lose_lease_ = false;
    std::function<void(std::size_t item)> on_deliver_;  // runs before each delivery
};

TEST_F(TaskProcessorTest, DeliversEveryItemInOrderAndRecordsAllButTheLast) {
    const TaskOutcome out = run(task_of(3, 2));
    EXPECT_EQ(out.kind, Kind::Completed);
    ASSERT_EQ(sent_.size(), 3U);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(sent_[i].url, "https://hooks.example.com/" + std::to_string(i));
        EXPECT_EQ(sent_[i].message_id, webhook_message_id(task_of(3, 2), i));
        EXPECT_EQ(sent_[i].content_type, "audio/wav");
        EXPECT_EQ(sent_[i].body.substr(0, 4), "RIFF");
        EXPECT_EQ(sent_[i].headers.at("voxq-item"), std::to_string(i));
        EXPECT_EQ(sent_[i].headers.at("voxq-item-count"), "3");
        EXPECT_EQ(sent_[i].headers.at("voxq-attempt"), "2");
        EXPECT_EQ(timestamps_[i], static_cast<std::int64_t>(clock_.now_seconds()));
    }
    EXPECT_EQ(recorded_, (std::vector<std::int64_t>{0, 1}));  // the completion records the last
    EXPECT_EQ(counters_.items_delivered.load(), 3);
    EXPECT_EQ(counters_.completed.load(), 0) << "the completer counts outcomes, not the executor";
}

TEST_F(TaskProcessorTest, ALaterAttemptStartsAtTheFirstItemNotDelivered) {
    Task task = task_of(3);
    task.items_delivered = 2;
    EXPECT_EQ(run(task).kind, Kind::Completed);
    ASSERT_EQ(sent_.size(), 1U);
    EXPECT_EQ(sent_[0].message_id, webhook_message_id(task, 2));
    EXPECT_EQ(engine_->texts, (std::vector<std::string>{"text 2"}));
    EXPECT_EQ(counters_.items_skipped.load(), 2);
}

TEST_F(TaskProcessorTest, EngineErrorsAreRetriedOrDiscardedByTheirKindAndNothingIsSent) {
    engine_->before = [](const TextToSpeechRequest&) {
        throw SpeechError("voice 'nope' is unknown", true);
    };
    TaskOutcome out = run(task_of(2));
    EXPECT_EQ(out.kind, Kind::Discard);
    EXPECT_EQ(out.message, "item 0: voice 'nope' is unknown");
    engine_->before = [](const TextToSpeechRequest&) {
        throw SpeechError("the engine process died", false);
    };
    out = run(task_of(2));
    EXPECT_EQ(out.kind, Kind::Retry);
    EXPECT_EQ(out.message, "item 0: the engine process died");
    EXPECT_FALSE(out.not_before);
    EXPECT_TRUE(sent_.empty());
}

TEST_F(TaskProcessorTest, ReceiverAnswersBecomeOutcomesAndRetryAfterIsClamped) {
    WebhookOutcome busy = answer(WebhookOutcome::Kind::Transient, "HTTP 503");
    busy.retry_after = 1e12;  // a hostile Retry-After
    answers_ = {answer(WebhookOutcome::Kind::Delivered), busy};
    TaskOutcome out = run(task_of(3), {0, 600});
    EXPECT_EQ(out.kind, Kind::Retry);
    EXPECT_EQ(out.message, "item 1: HTTP 503");
    ASSERT_TRUE(out.not_before);
    EXPECT_DOUBLE_EQ(*out.not_before, clock_.now_seconds() + 600);
    EXPECT_EQ(sent_.size(), 2U) << "no item after a failed one";

    answers_ = {answer(WebhookOutcome::Kind::Permanent, "HTTP 410")};
    EXPECT_EQ(run(task_of(1)).kind, Kind::Discard);
    answers_ = {answer(WebhookOutcome::Kind::Refused, "address 10.0.0.1 is internal")};
    out = run(task_of(1));
    EXPECT_EQ(out.kind, Kind::Discard);
    EXPECT_EQ(out.message, "item 0: address 10.0.0.1 is internal");
    EXPECT_EQ(counters_.webhooks_transient.load(), 1);
    EXPECT_EQ(counters_.webhooks_permanent.load(), 1);
    EXPECT_EQ(counters_.webhooks_refused.load(), 1);
}

TEST_F(TaskProcessorTest, ALostLeaseStopsTheAttemptBeforeTheNextItem) {
    lose_lease_ = true;
    EXPECT_EQ(run(task_of(3)).kind, Kind::LeaseLost);
    EXPECT_EQ(sent_.size(), 1U);
}

// Time moves in the deliveries (the engine runs ahead on another thread, so a
// clock it moved would race with the checks).
TEST_F(TaskProcessorTest, TheAttemptDeadlineIsCheckedBeforeEachItemOnTheQueueClock) {
    on_deliver_ = [&](std::size_t) { clock_.advance_seconds(10); };
    const TaskOutcome out = run(task_of(4), {15, 3600});
    EXPECT_EQ(out.kind, Kind::Retry);
    EXPECT_EQ(out.message, "item 2: not started: the attempt ran past VOXQ_TASK_TIMEOUT (15 s)");
    EXPECT_EQ(sent_.size(), 2U);
}

TEST_F(TaskProcessorTest, AnythingElseAnEngineThrowsReachesTheWorkersCatchAll) {
    engine_->before = [](const TextToSpeechRequest&) { throw std::runtime_error("boom"); };
    EXPECT_THROW((void)run(task_of(1)), std::runtime_error);
}

// SPEC §6: the engine is not idle while a receiver answers. An engine and a
// receiver of 50 ms each: before item i's receiver answers, it sees the engine
// already at work on item i+1 (the handshake makes this an order, not a timing).
TEST_F(TaskProcessorTest, TheNextItemIsSynthesizedWhileThisOneIsDelivered) {
    constexpr std::size_t kItems = 6;
    std::mutex mutex;
    std::condition_variable changed;
    std::set<std::string> begun;  // texts the engine has started on
    engine_->before = [&](const TextToSpeechRequest& r) {
        {
            std::lock_guard lock(mutex);
            begun.insert(r.text);
        }
        changed.notify_all();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    };
    on_deliver_ = [&](std::size_t item) {
        if (item + 1 < kItems) {
            std::unique_lock lock(mutex);
            const std::string next = "text " + std::to_string(item + 1);
            EXPECT_TRUE(changed.wait_for(lock, std::chrono::seconds(5),
                                         [&] { return begun.count(next) == 1; }))
                << "item " << item << " was delivered before the engine began item " << item + 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    };
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(run(task_of(kItems)).kind, Kind::Completed);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    RecordProperty("elapsed_ms", static_cast<int>(ms));  // about 7 x 50, not 12 x 50
    ASSERT_EQ(sent_.size(), kItems);
    for (std::size_t i = 0; i < kItems; ++i)
        EXPECT_EQ(sent_[i].url, task_of(kItems).items[i].response_url);
    EXPECT_EQ(engine_->texts.size(), kItems) << "an item was synthesized twice";
}

// A failed delivery ends the attempt at once; the item made ahead is waited
// for, never sent.
TEST_F(TaskProcessorTest, AFailedDeliveryNeverSendsTheItemMadeAhead) {
    answers_ = {answer(WebhookOutcome::Kind::Transient, "HTTP 503")};
    const TaskOutcome out = run(task_of(3));
    EXPECT_EQ(out.kind, Kind::Retry);
    EXPECT_EQ(out.message, "item 0: HTTP 503");
    EXPECT_EQ(sent_.size(), 1U);
    EXPECT_EQ(recorded_.size(), 0U);
    EXPECT_LE(engine_->texts.size(), 2U);
}

}  // namespace
}  // namespace voxq
