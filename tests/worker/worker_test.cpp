// The built-in worker end to end: the real store, the real espeak-ng (through its
// helper), real HTTP receivers on 127.0.0.1 (voxq's own sink, and cpp-httplib
// servers that fail on purpose).
#include "voxq/worker.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "support/audio.hpp"
#include "support/tasks.hpp"
#include "support/temp_dir.hpp"
#include "voxq/engines.hpp"
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
        espeak_ = SpeechEngines::from_map({}, VOXQ_ESPEAK_HELPER_PATH);
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
    std::shared_ptr<SpeechEngines> espeak_;
};

TEST_F(WorkerTest, DeliversEveryItemOnceInEveryFormatAndCompletesTheTasks) {
    WebhookSink sink(SinkConfig{"127.0.0.1", 0, dir_.path() / "sink", {kSecret}, 600});
    sink.start();
    const std::string url = "http://127.0.0.1:" + std::to_string(sink.port()) + "/";
    std::vector<Task> tasks;
    const char* voices[] = {"espeak.en-us", "espeak.de", "espeak.fr", "espeak.es"};
    const auto& formats = audio_formats();
    std::map<std::string, std::string> format_of;  // webhook id -> format
    for (int i = 0; i < 200; ++i) {
        Task t;
        for (int k = 0; k <= i % 3; ++k) {
            const std::string& format = formats[(i + k) % formats.size()];
            t.items.push_back(
                TaskItem{{"Sentence " + std::to_string(k) + " of task " + std::to_string(i) + ".",
                          voices[i % 4], 1.0, format},
                         url});
        }
        tasks.push_back(t);
    }
    queue_->enqueue(tasks);
    std::size_t items = 0;
    for (const Task& t : tasks) {
        for (std::size_t k = 0; k < t.items.size(); ++k, ++items)
            format_of[t.id + "." + std::to_string(k)] = t.items[k].request.format;
    }
    WorkerOptions options;
    options.concurrency = 4;
    options.sweep_interval = 0;
    Worker worker(*queue_, options, espeak_, loopback_sender());
    worker.start();
    for (int i = 0; i < 30000 && queue_->get_queue_stats()["completed"] < 200; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    worker.stop();
    EXPECT_EQ(queue_->get_queue_stats()["completed"], 200);
    EXPECT_EQ(sink.received(), items);
    // Every delivery verified, once per item, and every file decodes to speech.
    std::ifstream index(dir_.path() / "sink" / "deliveries.jsonl");
    std::set<std::string> ids;
    std::size_t lines = 0;
    for (std::string line; std::getline(index, line); ++lines) {
        const auto j = nlohmann::json::parse(line);
        EXPECT_TRUE(j["verified"].get<bool>()) << line;
        const std::string id = j["webhook_id"];
        ids.insert(id);
        const std::string format = format_of.at(id);
        std::ifstream file(dir_.path() / "sink" / j["file"].get<std::string>(), std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(file)),
                                std::istreambuf_iterator<char>());
        if (format == "pcm") {
            EXPECT_EQ(j["content_type"], "audio/L16;rate=22050");
            EXPECT_GT(bytes.size(), 22050U) << id << ": under half a second of PCM";
            continue;
        }
        const test::DecodedAudio audio = test::decode_audio(bytes);
        ASSERT_TRUE(audio.ok) << id << " (" << format << "): " << audio.error;
        EXPECT_GT(audio.seconds(), 0.5) << id << " (" << format << ")";
        EXPECT_LT(audio.seconds(), 6.0) << id << " (" << format << ")";
        EXPECT_GT(audio.peak, 1000) << id << " (" << format << ") is silence";
    }
    EXPECT_EQ(lines, items);
    EXPECT_EQ(ids.size(), items) << "an item was delivered twice";
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
    EXPECT_NE(t.last_error.find("VOXQ_ENGINE_KOKORO_URL"), std::string::npos) << t.last_error;
    EXPECT_EQ(receiver.hits.load(), 0);
}

TEST_F(WorkerTest, AnUnknownVoiceIsDiscardedAtOnceNamingIt) {
    FixedReceiver receiver(200);
    const std::string id = enqueue(receiver.url(), "espeak.no-such-voice");
    Worker(*queue_, WorkerOptions{}, espeak_, loopback_sender()).process(claim());
    const Task after = queue_->get_task(id);
    EXPECT_EQ(after.state, TaskState::DISCARDED);
    EXPECT_NE(after.last_error.find("no-such-voice"), std::string::npos) << after.last_error;
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
