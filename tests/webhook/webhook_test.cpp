// Webhook delivery against real HTTP servers on 127.0.0.1 (cpp-httplib, and a raw
// socket for connections that hang or close), and the address policy's
// classifier. No traffic leaves 127.0.0.0/8.
#include "voxq/webhook.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "support/receiver.hpp"
#include "support/temp_dir.hpp"
#include "voxq/errors.hpp"
#include "voxq/sink.hpp"

namespace voxq {
namespace {

std::vector<std::uint8_t> ip(const std::string& text) {
    std::uint8_t buf[16];
    if (inet_pton(AF_INET, text.c_str(), buf) == 1) return {buf, buf + 4};
    EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), buf), 1) << text;
    return {buf, buf + 16};
}

TEST(WebhookSignature, MatchesTheStandardWebhooksTestVector) {
    EXPECT_EQ(sign_webhook({"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
                           "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})"),
              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(WebhookSignature, OneEntryPerSecretForRotation) {
    const std::string both = sign_webhook(
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2Vjb25kLXNlY3JldC1rZXktMTIz"}, "m", 1,
        "body");
    const auto space = both.find(' ');
    ASSERT_NE(space, std::string::npos);
    EXPECT_EQ(both.substr(0, space),
              sign_webhook({"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "m", 1, "body"));
    EXPECT_EQ(both.substr(space + 1),
              sign_webhook({"whsec_c2Vjb25kLXNlY3JldC1rZXktMTIz"}, "m", 1, "body"));
    EXPECT_THROW((void)sign_webhook({"not-a-secret"}, "m", 1, "b"), ConfigError);
    EXPECT_THROW((void)sign_webhook({"whsec_abc"}, "m", 1, "b"), ConfigError);
}

TEST(AddressPolicy, RefusesInternalAddressesUnlessAllowed) {
    for (const char* refused : {"127.0.0.1",
                                "127.255.0.9",
                                "10.1.2.3",
                                "172.16.0.1",
                                "172.31.255.255",
                                "192.168.1.1",
                                "169.254.169.254",
                                "100.64.0.1",
                                "0.0.0.0",
                                "224.0.0.1",
                                "255.255.255.255",
                                "::1",
                                "::",
                                "fe80::1",
                                "fc00::1",
                                "fd12:3456::1",
                                "ff02::1",
                                "::ffff:127.0.0.1",
                                "::ffff:10.0.0.1",
                                "::ffff:169.254.169.254",
                                "64:ff9b::a00:1",
                                "fd00:ec2::254"}) {
        EXPECT_FALSE(refused_address_reason(ip(refused), {}).empty()) << refused;
    }
    for (const char* allowed :
         {"8.8.8.8", "1.1.1.1", "172.32.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"}) {
        EXPECT_EQ(refused_address_reason(ip(allowed), {}), "") << allowed;
    }
    EXPECT_EQ(refused_address_reason(ip("169.254.169.254"), {}),
              "a link-local or cloud metadata address");
    const std::vector<IpNetwork> loopback{IpNetwork::parse("127.0.0.0/8")};
    EXPECT_EQ(refused_address_reason(ip("127.0.0.1"), loopback), "");
    EXPECT_EQ(refused_address_reason(ip("::ffff:127.0.0.1"), loopback), "");
    EXPECT_NE(refused_address_reason(ip("10.0.0.1"), loopback), "");
    EXPECT_NE(refused_address_reason(ip("::1"), loopback), "");
    EXPECT_THROW((void)IpNetwork::parse("10.0.0.0/33"), ConfigError);
    EXPECT_THROW((void)IpNetwork::parse("example.com"), ConfigError);
}

using test::Receiver;

WebhookConfig loopback_allowed() {
    WebhookConfig c;
    c.allow_nets.push_back(IpNetwork::parse("127.0.0.0/8"));
    c.connect_timeout = 2;
    c.total_timeout = 5;
    return c;
}

WebhookRequest audio_request(const std::string& url) {
    return WebhookRequest{url,
                          std::string("RIFF....WAVEdata\x01\x02", 18),
                          "audio/wav",
                          "tsk_1.0",
                          {{"voxq-task-id", "tsk_1"}, {"voxq-item", "0"}}};
}

TEST(WebhookSender, DeliversSignedAudioOnA2xx) {
    Receiver r;
    WebhookConfig config = loopback_allowed();
    config.secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    const WebhookSender sender(config);
    const WebhookOutcome out = sender.send(audio_request(r.url()), 1700000000);
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Delivered) << out.message;
    EXPECT_EQ(out.http_status, 200);
    EXPECT_EQ(r.hits(), 1);
    EXPECT_EQ(r.last_body(), std::string("RIFF....WAVEdata\x01\x02", 18));
    auto header = [&](const char* name) { return r.last_header(name); };
    EXPECT_EQ(header("Content-Type"), "audio/wav");
    EXPECT_EQ(header("webhook-id"), "tsk_1.0");
    EXPECT_EQ(header("webhook-timestamp"), "1700000000");
    EXPECT_EQ(header("voxq-task-id"), "tsk_1");
    // The receiver can verify the signature over exactly the bytes it received.
    EXPECT_EQ(header("webhook-signature"),
              sign_webhook(config.secrets, "tsk_1.0", 1700000000, r.last_body()));
}

TEST(WebhookSender, ClassifiesAnswersByWhatTheQueueShouldDo) {
    Receiver r;
    const WebhookSender sender(loopback_allowed());
    const std::vector<std::pair<int, WebhookOutcome::Kind>> cases = {
        {204, WebhookOutcome::Kind::Delivered}, {500, WebhookOutcome::Kind::Transient},
        {503, WebhookOutcome::Kind::Transient}, {408, WebhookOutcome::Kind::Transient},
        {429, WebhookOutcome::Kind::Transient}, {404, WebhookOutcome::Kind::Permanent},
        {410, WebhookOutcome::Kind::Permanent}, {400, WebhookOutcome::Kind::Permanent},
        {302, WebhookOutcome::Kind::Permanent},
    };
    for (const auto& [status, kind] : cases) {
        r.answer(status);
        const WebhookOutcome out = sender.send(audio_request(r.url()), 1);
        EXPECT_EQ(out.kind, kind) << status << ": " << out.message;
        EXPECT_EQ(out.http_status, status);
    }
    EXPECT_EQ(r.hits(), static_cast<int>(cases.size())) << "a redirect was followed";
}

TEST(WebhookSender, HonoursRetryAfter) {
    Receiver r;
    r.answer(429, {{"Retry-After", "7"}});
    const WebhookSender sender(loopback_allowed());
    WebhookOutcome out = sender.send(audio_request(r.url()), 1);
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Transient);
    ASSERT_TRUE(out.retry_after.has_value());
    EXPECT_DOUBLE_EQ(*out.retry_after, 7);
    r.answer(429, {{"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"}});  // in the past
    out = sender.send(audio_request(r.url()), 1);
    ASSERT_TRUE(out.retry_after.has_value());
    EXPECT_DOUBLE_EQ(*out.retry_after, 0);
}

TEST(WebhookSender, RefusesLoopbackByDefaultAndSendsNothing) {
    Receiver r;
    WebhookConfig config;  // no allow list
    const WebhookSender sender(config);
    const WebhookOutcome out = sender.send(audio_request(r.url()), 1);
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Refused);
    EXPECT_NE(out.message.find("loopback"), std::string::npos) << out.message;
    // By name as well: localhost resolves to loopback, checked after DNS.
    const WebhookOutcome by_name =
        sender.send(audio_request("http://localhost:" + r.url().substr(r.url().rfind(':') + 1)), 1);
    EXPECT_EQ(by_name.kind, WebhookOutcome::Kind::Refused) << by_name.message;
    EXPECT_EQ(r.hits(), 0) << "the receiver saw a request";
}

// A raw TCP listener on 127.0.0.1 that reads the request and then either closes
// the connection or keeps it open without answering.
class SilentReceiver {
  public:
    explicit SilentReceiver(bool close_at_once) : close_(close_at_once) {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        listen(fd_, 4);
        socklen_t len = sizeof addr;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] {
            const int c = accept(fd_, nullptr, nullptr);
            if (c < 0) return;
            char buf[4096];
            (void)read(c, buf, sizeof buf);
            ++requests_;
            if (!close_) {
                while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            ::close(c);
        });
    }
    ~SilentReceiver() {
        stop_ = true;
        shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
    std::atomic<int> requests_ = 0;

  private:
    bool close_;
    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_ = false;
    std::thread thread_;
};

TEST(WebhookSender, AClosedConnectionIsTransientAndInDoubt) {
    SilentReceiver r(/*close_at_once=*/true);
    const WebhookSender sender(loopback_allowed());
    const WebhookOutcome out = sender.send(audio_request(r.url()), 1);
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Transient) << out.message;
    EXPECT_TRUE(out.in_doubt);
    EXPECT_EQ(out.http_status, 0);
}

TEST(WebhookSender, AHangingReceiverTimesOutAsTransient) {
    SilentReceiver r(/*close_at_once=*/false);
    WebhookConfig config = loopback_allowed();
    config.total_timeout = 0.3;
    const WebhookSender sender(config);
    const WebhookOutcome out = sender.send(audio_request(r.url()), 1);
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Transient) << out.message;
    EXPECT_TRUE(out.in_doubt) << "the request was sent before the timeout";
    EXPECT_NE(out.message.find("imed out"), std::string::npos) << out.message;
}

TEST(WebhookSender, NothingListeningIsTransient) {
    // A port that was free a moment ago: bound, never listened on, released.
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    const WebhookSender sender(loopback_allowed());
    const WebhookOutcome out = sender.send(
        audio_request("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/hook"), 1);
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Transient) << out.message;
    EXPECT_FALSE(out.in_doubt);
}

std::string slurp(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

TEST(WebhookSink, SavesWhatItVerifies) {
    testing::TempDir dir;
    const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    WebhookSink sink(SinkConfig{"127.0.0.1", 0, dir.path() / "out", {secret}, 300});
    sink.start();
    WebhookConfig config = loopback_allowed();
    config.secrets = {"whsec_c2Vjb25kLXNlY3JldC1rZXktMTIz", secret};  // rotation: one matches
    const WebhookSender sender(config);
    const std::string url = "http://127.0.0.1:" + std::to_string(sink.port()) + "/";
    const WebhookOutcome out = sender.send(audio_request(url), unix_now());
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Delivered) << out.message;
    EXPECT_EQ(sink.received(), 1U);
    EXPECT_EQ(slurp(dir.path() / "out" / "tsk_1.0.wav"), audio_request(url).body);
    const std::string index = slurp(dir.path() / "out" / "deliveries.jsonl");
    EXPECT_NE(index.find(R"("verified":true)"), std::string::npos) << index;
    EXPECT_NE(index.find(R"("voxq-task-id":"tsk_1")"), std::string::npos) << index;
}

TEST(WebhookSink, RefusesBadAndStaleSignatures) {
    testing::TempDir dir;
    WebhookSink sink(
        SinkConfig{"127.0.0.1", 0, dir.path(), {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 300});
    sink.start();
    const std::string url = "http://127.0.0.1:" + std::to_string(sink.port()) + "/";
    WebhookConfig wrong = loopback_allowed();
    wrong.secrets = {"whsec_c2Vjb25kLXNlY3JldC1rZXktMTIz"};
    WebhookOutcome out = WebhookSender(wrong).send(audio_request(url), unix_now());
    EXPECT_EQ(out.http_status, 401);
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Permanent);
    WebhookConfig right = loopback_allowed();
    right.secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    out = WebhookSender(right).send(audio_request(url), unix_now() - 3600);  // replayed
    EXPECT_EQ(out.http_status, 401);
    out = WebhookSender(loopback_allowed()).send(audio_request(url), unix_now());  // unsigned
    EXPECT_EQ(out.http_status, 401);
    EXPECT_EQ(sink.received(), 0U);
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "tsk_1.0.wav"));
}

}  // namespace
}  // namespace voxq
