// Outside input that used to end a worker or poison the store (SPEC §12): hostile
// webhook receivers and speech servers on 127.0.0.1, values that would wrap,
// strings that are not UTF-8, credentials in what voxq prints or stores.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/receiver.hpp"
#include "support/temp_dir.hpp"
#include "support/worker_env.hpp"
#include "util/text.hpp"
#include "voxq/errors.hpp"
#include "voxq/json.hpp"
#include "voxq/queue.hpp"
#include "voxq/speech.hpp"
#include "voxq/webhook.hpp"
#include "voxq/worker.hpp"

namespace voxq {
namespace {

using test::Receiver;
using testing::TempDir;

using test::loopback_sender;

class Hostile : public ::testing::Test {
  protected:
    void SetUp() override {
        config_.database_url = dir_.sqlite_url();
        queue_ = std::make_unique<WorkerQueue>(config_, clock_);
        queue_->initialize();
    }
    std::string enqueue(const std::string& url, const std::string& voice = "espeak.en-us") {
        Task t;
        t.items.push_back(TaskItem{{"A hostile peer.", voice}, url});
        std::vector<Task> v{t};
        queue_->enqueue(v);
        return v[0].id;
    }
    // Waits (real time: the worker's threads do real work) until `id` is in `state`.
    bool wait_for_state(const std::string& id, TaskState state) {
        for (int i = 0; i < 200; ++i) {
            if (queue_->get_task(id).state == state) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    TempDir dir_;
    QueueConfig config_;
    std::shared_ptr<ManualClock> clock_ = test::clock_at_now();
    std::unique_ptr<WorkerQueue> queue_;
};

TEST(RetryAfter, ParsesSecondsAndDatesAndSaturatesInsteadOfThrowing) {
    EXPECT_EQ(parse_retry_after("120", 0), 120.0);
    EXPECT_EQ(parse_retry_after("  7 \r\n", 0), 7.0);
    EXPECT_EQ(parse_retry_after("1" + std::string(400, '0'), 0), 1e9);
    EXPECT_EQ(parse_retry_after("9000000000000", 0), 1e9);
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10.0);
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490), 0.0);  // past
    EXPECT_FALSE(parse_retry_after("-5", 0));
    EXPECT_FALSE(parse_retry_after("soon", 0));
    EXPECT_FALSE(parse_retry_after("", 0));
    EXPECT_FALSE(parse_retry_after(std::string(100, '1') + "x", 0));
}

TEST_F(Hostile, AHugeRetryAfterNeitherEndsTheWorkerNorParksTheTaskForever) {
    Receiver huge(503);
    huge.answer(503, {{"Retry-After", "1" + std::string(400, '0')}});
    Receiver far(503);
    far.answer(503, {{"Retry-After", "9000000000000"}});
    const std::string a = enqueue(huge.url());
    const std::string b = enqueue(far.url());
    const auto engines = SpeechEngines::from_map({}, VOXQ_ESPEAK_HELPER_PATH);
    WorkerOptions options;
    options.concurrency = 2;
    Worker worker(*queue_, options, engines, loopback_sender());
    worker.start();
    ASSERT_TRUE(wait_for_state(a, TaskState::RETRYABLE));
    ASSERT_TRUE(wait_for_state(b, TaskState::RETRYABLE));
    // The same worker is alive and still takes work.
    Receiver fine(200);
    const std::string c = enqueue(fine.url());
    ASSERT_TRUE(wait_for_state(c, TaskState::COMPLETED));
    worker.stop();
    // The earliest next attempt is clamped to QUEUE_MAX_RETRY_DELAY.
    const double now = clock_->now_seconds();
    for (const Task& moved : queue_->retry()) {
        EXPECT_EQ(moved.state, TaskState::PENDING);
        EXPECT_LE(moved.schedule_at, now + config_.max_retry_delay + 1) << moved.id;
    }
    clock_->advance_seconds(config_.max_retry_delay + 1);
    EXPECT_EQ(queue_->dequeue(10).size(), 2U);
}

// A speech server whose errors are not UTF-8 (cut mid-character, or raw bytes).
class BrokenSpeechServer {
  public:
    explicit BrokenSpeechServer(std::string body) : body_(std::move(body)) {
        server_.Post(".*", [this](const httplib::Request&, httplib::Response& res) {
            res.status = 400;
            res.set_content(body_, "application/json");
        });
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~BrokenSpeechServer() {
        server_.stop();
        thread_.join();
    }
    BrokenSpeechServer(const BrokenSpeechServer&) = delete;
    BrokenSpeechServer& operator=(const BrokenSpeechServer&) = delete;
    [[nodiscard]] std::string base_url() const {
        return "http://user:engine-secret@127.0.0.1:" + std::to_string(port_) + "/v1";
    }

  private:
    std::string body_;
    httplib::Server server_;
    int port_ = 0;
    std::thread thread_;
};

TEST_F(Hostile, ASpeechServersBrokenErrorIsStoredAsValidUtf8AndListingsStillWork) {
    std::string accents;
    for (int i = 0; i < 150; ++i) accents += "\xC3\xA9";  // é: cut at 200 bytes would split one
    for (const std::string& body :
         {std::string(R"({"detail": "voice problem: )") + accents + "\"}",
          std::string("\xFF\xFE raw bytes \xC3 and http://u:hunter2@10.0.0.1/x")}) {
        BrokenSpeechServer server(body);
        const auto engines = SpeechEngines::from_map({{"VOXQ_ENGINE_FAKE_URL", server.base_url()}},
                                                     VOXQ_ESPEAK_HELPER_PATH);
        Receiver receiver(200);
        const std::string id = enqueue(receiver.url(), "fake.v1");
        Worker worker(*queue_, WorkerOptions{}, engines, loopback_sender());
        worker.process(queue_->dequeue(1).at(0));
        const Task t = queue_->get_task(id);
        EXPECT_NE(t.state, TaskState::COMPLETED);
        EXPECT_TRUE(is_valid_utf8(t.last_error)) << t.last_error;
        EXPECT_EQ(t.last_error.find("hunter2"), std::string::npos) << t.last_error;
        EXPECT_EQ(t.last_error.find("engine-secret"), std::string::npos) << t.last_error;
        // Everything that serializes stored data still does.
        const auto page = nlohmann::json::parse(task_page_to_json(queue_->list_tasks({}, 10, "")));
        EXPECT_FALSE(page["tasks"].empty());
        EXPECT_TRUE(nlohmann::json::accept(task_to_json(t, true)));
    }
}

TEST_F(Hostile, ValuesThatWouldWrapAreValidationErrorsAndStoreNothing) {
    const std::string item =
        R"("items":[{"request":{"text":"x","voice_id":"espeak.en"},"response_url":"http://e.com/"}])";
    for (const std::string& bad :
         {R"({"priority":18446744073709551615,)" + item + "}",
          R"({"priority":9223372036854775808,)" + item + "}",
          R"({"priority":4294967296,)" + item + "}", R"({"schedule_at":1e300,)" + item + "}",
          R"({"schedule_at":10000000000000,)" + item + "}", R"({"created_at":1e300,)" + item + "}",
          R"({"max_attempts":99999999999,)" + item + "}"}) {
        EXPECT_THROW(
            {
                std::vector<Task> v{task_from_json(bad)};
                queue_->enqueue(v);
            },
            ValidationError)
            << bad;
    }
    Task voice;
    for (const char* name : {"espeak..", "espeak.", "espeak.../x", "espeak..en"}) {
        voice.items = {TaskItem{{"x", name}, "http://e.com/"}};
        std::vector<Task> v{voice};
        EXPECT_THROW(queue_->enqueue(v), ValidationError) << name;
    }
    EXPECT_EQ(queue_->get_queue_stats()["total"], 0);
}

TEST(Settings, DurationsAndSizesHaveUpperBounds) {
    for (const auto& [name, value] : std::vector<std::pair<const char*, const char*>>{
             {"QUEUE_VISIBILITY_TIMEOUT", "1e300"},
             {"QUEUE_RETRY_BASE_DELAY", "1e300"},
             {"QUEUE_MAX_RETRY_DELAY", "1e300"},
             {"QUEUE_RETRY_BACKOFF_MULTIPLIER", "1e308"},
             {"QUEUE_MAX_ATTEMPTS", "99999999999"},
             {"VOXQ_SQLITE_BUSY_TIMEOUT_MS", "2147483648"},
             {"VOXQ_SQLITE_BUSY_TIMEOUT_MS", "99999999999999"}}) {
        setenv(name, value, 1);
        try {
            (void)QueueConfig::from_env();
            ADD_FAILURE() << name << "=" << value << " was accepted";
        } catch (const ConfigError& e) {
            EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
        }
        unsetenv(name);
    }
}

TEST(Text, Utf8IsRepairedAndCutAtCharacterBoundaries) {
    EXPECT_EQ(to_valid_utf8("a\xFF"
                            "b"),
              "a\xEF\xBF\xBD"
              "b");
    EXPECT_EQ(to_valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
    EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
    std::string accents;
    for (int i = 0; i < 10; ++i) accents += "\xC3\xA9";
    const std::string cut = truncate_utf8(accents, 8);
    EXPECT_TRUE(is_valid_utf8(cut));
    EXPECT_LE(cut.size(), 8U);
    EXPECT_EQ(escape_for_terminal("\x1B]0;owned\x07 ok\n"), "\\x1B]0;owned\\x07 ok\\n");
    EXPECT_EQ(escape_for_terminal("\xC2\x9B"
                                  "2J"),
              "\\u009B2J");  // C1 CSI
}

TEST(Text, CredentialsAreRedactedFromUrlsAndConnectionStrings) {
    EXPECT_EQ(redact_credentials("postgresql://voxq:S3cretPW@db/x"), "postgresql://voxq:***@db/x");
    EXPECT_EQ(redact_credentials("postgresq://voxq:S3cretPW@db/x"), "postgresq://voxq:***@db/x");
    EXPECT_EQ(redact_credentials("invalid URI \"postgresql://postgres:S3cret@[bad\""),
              "invalid URI \"postgresql://postgres:***@[bad\"");
    EXPECT_EQ(redact_credentials("https://tok@host/p"), "https://***@host/p");
    EXPECT_EQ(redact_credentials("postgresql://u:pa/ss@h/d"), "postgresql://u:***@h/d");
    EXPECT_EQ(redact_credentials("host=db password=S3cret user=x"), "host=db password=*** user=x");
    EXPECT_EQ(redact_credentials("host=db password='a b' user=x"), "host=db password=*** user=x");
    EXPECT_EQ(redact_credentials("https://h/p?x=1&api_key=K&X-Amz-Signature=abc"),
              "https://h/p?x=1&api_key=***&X-Amz-Signature=***");
    EXPECT_EQ(redact_credentials("http://example.com/a@b"), "http://***@b");  // safe side
    EXPECT_EQ(redact_credentials("no secrets here"), "no secrets here");
}

}  // namespace
}  // namespace voxq

namespace voxq {
namespace {

TEST_F(Hostile, AnAttemptPastItsDeadlineIsRetriedBeforeItsNextItem) {
    // The receiver is slow (the clock moves 100 s per delivery): with a 150 s
    // deadline, the third item of the attempt is not started.
    Receiver receiver(200);
    receiver.answer_with([this](const std::string&, int) {
        clock_->advance_seconds(100);
        return 200;
    });
    Task t;
    for (int i = 0; i < 4; ++i)
        t.items.push_back(TaskItem{{"Slow.", "espeak.en-us"}, receiver.url()});
    std::vector<Task> v{t};
    queue_->enqueue(v);
    WorkerOptions options;
    options.task_timeout = 150;
    Worker worker(*queue_, options, SpeechEngines::from_map({}, VOXQ_ESPEAK_HELPER_PATH),
                  loopback_sender());
    worker.process(queue_->dequeue(1).at(0));
    const Task after = queue_->get_task(v[0].id);
    EXPECT_EQ(after.state, TaskState::RETRYABLE);
    EXPECT_EQ(after.items_delivered, 2);
    EXPECT_NE(after.last_error.find("VOXQ_TASK_TIMEOUT (150 s)"), std::string::npos)
        << after.last_error;
    EXPECT_EQ(receiver.hits(), 2);
}

TEST(WorkerSettings, TaskTimeoutIsReadAndBounded) {
    setenv("VOXQ_TASK_TIMEOUT", "90", 1);
    EXPECT_EQ(WorkerOptions::from_env().task_timeout, 90);
    setenv("VOXQ_TASK_TIMEOUT", "1e300", 1);
    EXPECT_THROW((void)WorkerOptions::from_env(), ConfigError);
    setenv("VOXQ_TASK_TIMEOUT", "soon", 1);
    EXPECT_THROW((void)WorkerOptions::from_env(), ConfigError);
    unsetenv("VOXQ_TASK_TIMEOUT");
    EXPECT_EQ(WorkerOptions::from_env().task_timeout, 0);
}

}  // namespace
}  // namespace voxq

namespace voxq {
namespace {

TEST(DatabaseUrls, SqliteUriParametersAreRefusedAndPasswordsNeverEchoed) {
    for (const char* url : {"sqlite:///file:x?mode=memory", "sqlite:///q.db?mode=ro",
                            "sqlite:///q.db?nolock=1", "sqlite+aiosqlite:///file:q.db"}) {
        QueueConfig c;
        c.database_url = url;
        try {
            WorkerQueue q(c);
            q.initialize();
            ADD_FAILURE() << url << " was accepted";
        } catch (const ConfigError& e) {
            EXPECT_NE(std::string(e.what()).find("URI parameters"), std::string::npos) << e.what();
        }
    }
    for (const char* url :
         {"postgresq://voxq:S3cretPW@db/x", "postgresql://postgres:S3cretPW@[bad"}) {
        QueueConfig c;
        c.database_url = url;
        c.postgres_pool_size = 1;
        try {
            WorkerQueue q(c);
            q.initialize();
            ADD_FAILURE() << url << " was accepted";
        } catch (const QueueError& e) {
            EXPECT_EQ(std::string(e.what()).find("S3cretPW"), std::string::npos) << e.what();
        }
    }
}

}  // namespace
}  // namespace voxq

namespace voxq {
namespace {

// A TCP server on 127.0.0.1 that answers every connection with `reply(socket)`:
// raw bytes, so it can do what no well-behaved HTTP library would.
class RawServer {
  public:
    explicit RawServer(std::function<void(int fd)> reply) : reply_(std::move(reply)) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        ::listen(listener_, 16);
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] {
            for (;;) {
                const int fd = ::accept(listener_, nullptr, nullptr);
                if (fd < 0) return;
                // Read the request head (and whatever body came with it).
                char buf[65536];
                (void)::recv(fd, buf, sizeof buf, 0);
                reply_(fd);
                ::close(fd);
            }
        });
    }
    ~RawServer() {
        ::shutdown(listener_, SHUT_RDWR);
        ::close(listener_);
        thread_.join();
    }
    RawServer(const RawServer&) = delete;
    RawServer& operator=(const RawServer&) = delete;
    [[nodiscard]] std::string base_url() const {
        return "http://127.0.0.1:" + std::to_string(port_) + "/v1";
    }
    static void send_all(int fd, const std::string& bytes) {
        std::size_t at = 0;
        while (at < bytes.size()) {
            const ssize_t n = ::send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
            if (n <= 0) return;
            at += static_cast<std::size_t>(n);
        }
    }

  private:
    std::function<void(int)> reply_;
    int listener_ = -1;
    int port_ = 0;
    std::thread thread_;
};

TEST_F(Hostile, BrokenSpeechServersFailTheTaskNotTheWorker) {
    struct Case {
        const char* what;
        std::function<void(int)> reply;
        bool permanent;
    };
    // The engine holds whatever a server answers with as transient (a broken
    // deployment may be fixed); what matters is that the worker goes on.
    const std::vector<Case> cases = {
        {"50 MB of garbage as audio",
         [](int fd) {
             RawServer::send_all(fd,
                                 "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\n"
                                 "Content-Length: 52428800\r\n\r\n");
             const std::string mb(1 << 20, 'x');
             for (int i = 0; i < 50; ++i) RawServer::send_all(fd, mb);
         },
         false},
        {"a reset in the middle of the body",
         [](int fd) {
             RawServer::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nRIFF");
             linger reset{1, 0};  // close with RST
             ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
         },
         false},
        {"slower than the engine's timeout",
         [](int fd) {
             std::this_thread::sleep_for(std::chrono::milliseconds(2500));
             RawServer::send_all(fd, "HTTP/1.1 500 Late\r\nContent-Length: 0\r\n\r\n");
         },
         false},
        {"a WAV with an absurd sample rate",
         [](int fd) {
             std::string wav("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00", 20);
             wav += std::string("\x01\x00\x01\x00\xff\xff\xff\x7f\x00\x00\x00\x00\x02\x00\x10\x00",
                                16);
             wav += std::string("data\x04\x00\x00\x00\x01\x00\x02\x00", 12);
             RawServer::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: " +
                                         std::to_string(wav.size()) + "\r\n\r\n" + wav);
         },
         false},
    };
    Receiver receiver(200);
    for (const Case& c : cases) {
        RawServer server(c.reply);
        const auto engines = SpeechEngines::from_map(
            {{"VOXQ_ENGINE_FAKE_URL", server.base_url()}, {"VOXQ_ENGINE_FAKE_TIMEOUT", "1"}},
            VOXQ_ESPEAK_HELPER_PATH);
        const std::string id = enqueue(receiver.url(), "fake.v1");
        Worker worker(*queue_, WorkerOptions{}, engines, loopback_sender());
        worker.process(queue_->dequeue(1).at(0));
        const Task t = queue_->get_task(id);
        EXPECT_EQ(t.state, c.permanent ? TaskState::DISCARDED : TaskState::RETRYABLE)
            << c.what << ": " << t.last_error;
        EXPECT_TRUE(is_valid_utf8(t.last_error));
        if (std::string(c.what).find("sample rate") != std::string::npos) {
            EXPECT_NE(t.last_error.find("outside 8000..384000"), std::string::npos) << t.last_error;
        }
    }
    EXPECT_EQ(receiver.hits(), 0);
}

}  // namespace
}  // namespace voxq
