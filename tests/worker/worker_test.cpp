// The built-in worker end to end: the real store, the real espeak-ng (through its
// helper), real HTTP receivers on 127.0.0.1 (voxq's own sink, and cpp-httplib
// servers that fail on purpose).
#include "voxq/worker.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <set>
#include <thread>

#include "support/tasks.hpp"
#include "support/temp_dir.hpp"
#include "voxq/sink.hpp"

namespace voxq {
namespace {

using testing::TempDir;

const std::string kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

std::shared_ptr<WebhookSender> loopback_sender() {
    WebhookConfig c;
    c.allow_nets.push_back(IpNetwork::parse("127.0.0.0/8"));
    c.secrets = {kSecret};
    c.total_timeout = 5;
    return std::make_shared<WebhookSender>(c);
}

// An HTTP server on 127.0.0.1 answering every POST with `status` after `delay`.
class FixedReceiver {
  public:
    explicit FixedReceiver(int status, std::chrono::milliseconds delay = {}) {
        server_.Post(".*", [this, status, delay](const httplib::Request&, httplib::Response& res) {
            ++hits;
            std::this_thread::sleep_for(delay);
            res.status = status;
        });
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~FixedReceiver() {
        server_.stop();
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
    std::atomic<int> hits = 0;

  private:
    httplib::Server server_;
    int port_ = 0;
    std::thread thread_;
};

class WorkerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        config_.database_url = dir_.sqlite_url();
        queue_ = std::make_unique<WorkerQueue>(config_, clock_);
        queue_->initialize();
        espeak_ = std::make_shared<EspeakEngine>(VOXQ_ESPEAK_HELPER_PATH);
    }
    std::string enqueue(const std::string& url, const std::string& voice = "espeak.en-us",
                        int items = 1) {
        Task t;
        for (int i = 0; i < items; ++i) {
            t.items.push_back(TaskItem{{"Item " + std::to_string(i) + " of a test.", voice}, url});
        }
        std::vector<Task> v{t};
        queue_->enqueue(v);
        return v[0].id;
    }
    Task claim() {
        auto got = queue_->dequeue(1);
        EXPECT_EQ(got.size(), 1U);
        return got.at(0);
    }

    TempDir dir_;
    QueueConfig config_;
    std::shared_ptr<ManualClock> clock_ =
        std::make_shared<ManualClock>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
    std::unique_ptr<WorkerQueue> queue_;
    std::shared_ptr<EspeakEngine> espeak_;
};

TEST_F(WorkerTest, DeliversEveryItemOnceAndCompletesTheTasks) {
    WebhookSink sink(SinkConfig{"127.0.0.1", 0, dir_.path() / "sink", {kSecret}, 600});
    sink.start();
    const std::string url = "http://127.0.0.1:" + std::to_string(sink.port()) + "/";
    std::vector<Task> tasks;
    const char* voices[] = {"espeak.en-us", "espeak.de", "espeak.fr"};
    std::size_t items = 0;
    for (int i = 0; i < 12; ++i) {
        Task t;
        for (int k = 0; k <= i % 3; ++k) {
            t.items.push_back(
                TaskItem{{"Sentence " + std::to_string(k) + " of task " + std::to_string(i) + ".",
                          voices[i % 3], 1.0, k % 2 == 0 ? "wav" : "pcm"},
                         url});
            ++items;
        }
        tasks.push_back(t);
    }
    queue_->enqueue(tasks);
    WorkerOptions options;
    options.concurrency = 3;
    options.sweep_interval = 0;
    Worker worker(*queue_, options, espeak_, loopback_sender());
    worker.start();
    for (int i = 0; i < 3000 && queue_->get_queue_stats()["completed"] < 12; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    worker.stop();
    EXPECT_EQ(queue_->get_queue_stats()["completed"], 12);
    EXPECT_EQ(sink.received(), items);
    // Every delivery verified, once per item, and the audio is real.
    std::ifstream index(dir_.path() / "sink" / "deliveries.jsonl");
    std::set<std::string> ids;
    std::size_t lines = 0;
    for (std::string line; std::getline(index, line); ++lines) {
        EXPECT_NE(line.find(R"("verified":true)"), std::string::npos) << line;
        const auto at = line.find(R"("webhook_id":")") + 14;
        ids.insert(line.substr(at, line.find('"', at) - at));
    }
    EXPECT_EQ(lines, items);
    EXPECT_EQ(ids.size(), items) << "an item was delivered twice";
    for (const Task& t : tasks) {
        std::ifstream wav(dir_.path() / "sink" / (t.id + "_0.wav"), std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(wav)), std::istreambuf_iterator<char>());
        ASSERT_GT(bytes.size(), 44U + 22050U / 2) << t.id;  // over a quarter second
        EXPECT_EQ(bytes.substr(0, 4), "RIFF");
    }
}

TEST_F(WorkerTest, AFailingReceiverIsRetriedWithBackoffThenDiscarded) {
    FixedReceiver receiver(500);
    const std::string id = enqueue(receiver.url());
    Worker worker(*queue_, WorkerOptions{}, espeak_, loopback_sender());
    for (int attempt = 1; attempt <= 3; ++attempt) {
        worker.process(claim());
        const Task t = queue_->get_task(id);
        EXPECT_EQ(t.state, TaskState::RETRYABLE);
        EXPECT_NE(t.last_error.find("HTTP 500"), std::string::npos) << t.last_error;
        const auto moved = queue_->retry();
        ASSERT_EQ(moved.size(), 1U);
        EXPECT_EQ(moved[0].state, attempt < 3 ? TaskState::PENDING : TaskState::DISCARDED);
        EXPECT_TRUE(queue_->dequeue(1).empty()) << "claimed before its backoff";
        clock_->advance_seconds(4000);
    }
    EXPECT_EQ(receiver.hits.load(), 3);
    EXPECT_EQ(queue_->get_task(id).state, TaskState::DISCARDED);
}

TEST_F(WorkerTest, GoneOrNotFoundIsDiscardedAtOnce) {
    for (int status : {404, 410}) {
        FixedReceiver receiver(status);
        const std::string id = enqueue(receiver.url());
        Worker(*queue_, WorkerOptions{}, espeak_, loopback_sender()).process(claim());
        const Task t = queue_->get_task(id);
        EXPECT_EQ(t.state, TaskState::DISCARDED) << status;
        EXPECT_EQ(t.attempt_count, 1);
        EXPECT_NE(t.last_error.find("HTTP " + std::to_string(status)), std::string::npos);
    }
}

TEST_F(WorkerTest, AnUnconfiguredEngineIsDiscardedAtOnceSayingWhatToConfigure) {
    FixedReceiver receiver(200);
    const std::string id = enqueue(receiver.url(), "kokoro.af_heart");
    Worker(*queue_, WorkerOptions{}, espeak_, loopback_sender()).process(claim());
    const Task t = queue_->get_task(id);
    EXPECT_EQ(t.state, TaskState::DISCARDED);
    EXPECT_NE(t.last_error.find("VOXQ_ENGINE_kokoro_URL"), std::string::npos) << t.last_error;
    EXPECT_EQ(receiver.hits.load(), 0);
}

TEST_F(WorkerTest, AFormatNotSupportedYetIsDiscardedAtOnce) {
    FixedReceiver receiver(200);
    Task t;
    t.items.push_back(TaskItem{{"Hello", "espeak.en-us", 1.0, "mp3"}, receiver.url()});
    std::vector<Task> v{t};
    queue_->enqueue(v);
    Worker(*queue_, WorkerOptions{}, espeak_, loopback_sender()).process(claim());
    const Task after = queue_->get_task(v[0].id);
    EXPECT_EQ(after.state, TaskState::DISCARDED);
    EXPECT_NE(after.last_error.find("format 'mp3' is not supported yet"), std::string::npos)
        << after.last_error;
    EXPECT_EQ(receiver.hits.load(), 0);
}

TEST_F(WorkerTest, StopHandsBackWhatIsStillRunningWithoutSpendingAnAttempt) {
    FixedReceiver slow(200, std::chrono::milliseconds(1500));
    const std::string id = enqueue(slow.url());
    WorkerOptions options;
    options.concurrency = 1;
    options.grace_period = 0.1;
    options.sweep_interval = 0;
    Worker worker(*queue_, options, espeak_, loopback_sender());
    worker.start();
    while (slow.hits.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    worker.stop();
    const Task t = queue_->get_task(id);
    EXPECT_EQ(t.state, TaskState::PENDING) << "left " << to_string(t.state);
    EXPECT_EQ(t.attempt_count, 0) << "the attempt was spent";
    EXPECT_EQ(worker.counters().released.load(), 1);
    EXPECT_EQ(queue_->get_queue_stats()["processing"], 0);
}

}  // namespace
}  // namespace voxq
