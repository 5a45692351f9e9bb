// Webhook delivery against real HTTP servers on 127.0.0.1 (cpp-httplib, and a raw
// socket for connections that hang or close), and the address policy's
// classifier. No traffic leaves 127.0.0.0/8.
#include "voxq/webhook.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "support/receiver.hpp"
#include "support/temp_dir.hpp"
#include "voxq/errors.hpp"
#include "voxq/sink.hpp"
#include "voxq/version.hpp"

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

TEST(WebhookSecret, ShorterThan24BytesIsAConfigErrorNamingTheVariable) {
    check_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "X");  // 24 bytes
    check_webhook_secret(random_webhook_secret(), "X");                   // 32 bytes
    for (const char* bad : {"whsec_AAAA", "whsec_c2Vjb25kLXNlY3JldC1rZXktMTIz", "whsec_",
                            "nosecretprefix", "whsec_!!!!"}) {
        try {
            check_webhook_secret(bad, "VOXQ_WEBHOOK_SECRET");
            ADD_FAILURE() << bad << " was accepted";
        } catch (const ConfigError& e) {
            EXPECT_EQ(std::string(e.what()).rfind("VOXQ_WEBHOOK_SECRET: ", 0), 0U) << e.what();
        }
    }
    setenv("VOXQ_WEBHOOK_SECRET", "whsec_AAAA", 1);
    EXPECT_THROW((void)WebhookConfig::from_env(), ConfigError);
    setenv("VOXQ_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
    setenv("VOXQ_WEBHOOK_PAYLOAD", "xml", 1);
    EXPECT_THROW((void)WebhookConfig::from_env(), ConfigError);
    setenv("VOXQ_WEBHOOK_PAYLOAD", "raw", 1);
    EXPECT_EQ(WebhookConfig::from_env().payload, WebhookPayload::Raw);
    unsetenv("VOXQ_WEBHOOK_PAYLOAD");
    EXPECT_EQ(WebhookConfig::from_env().payload, WebhookPayload::Json);
    unsetenv("VOXQ_WEBHOOK_SECRET");
}

Task two_item_task(const std::string& id) {
    Task task;
    task.id = id;
    task.created_at = 1700000000.25;
    task.attempt_count = 3;
    for (int i = 0; i < 2; ++i)
        task.items.push_back(TaskItem{{"hi", "espeak.en", 1.0, "wav"}, "http://127.0.0.1/h"});
    return task;
}

ItemAudio some_audio() {
    std::string bytes = "RIFF";
    for (int i = 0; i < 1000; ++i) bytes += static_cast<char>(i * 7);  // not UTF-8
    return {bytes, "audio/wav", "wav", 22050, 1, 0.5};
}

TEST(WebhookId, StablePerItemDistinctAndOfTheSafeAlphabet) {
    const Task task = two_item_task("caller.chose.this.id");
    const std::string id = webhook_message_id(task, 0);
    EXPECT_EQ(id.size(), 4U + 27U) << id;
    EXPECT_EQ(id.rfind("msg_", 0), 0U);
    EXPECT_EQ(
        id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"),
        std::string::npos)
        << id;
    Task retried = task;
    retried.attempt_count = 7;
    EXPECT_EQ(webhook_message_id(retried, 0), id) << "a retry must be sent under the same id";
    EXPECT_NE(webhook_message_id(task, 1), id);
    EXPECT_NE(webhook_message_id(two_item_task("caller.chose.this.ie"), 0), id);
    Task recreated = task;  // the same id enqueued again later
    recreated.created_at += 1;
    EXPECT_NE(webhook_message_id(recreated, 0), id);
}

TEST(WebhookDelivery, JsonIsAStandardWebhooksEventWithTheAudioInline) {
    const Task task = two_item_task("t1");
    const ItemAudio audio = some_audio();
    const WebhookRequest r = delivery_request(task, 1, audio, WebhookPayload::Json, 1700000000.5);
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.message_id, webhook_message_id(task, 1));
    EXPECT_TRUE(r.headers.empty());
    const auto event = nlohmann::json::parse(r.body);  // valid JSON, hence valid UTF-8
    EXPECT_EQ(event["type"], "speech.item.ready");
    EXPECT_EQ(event["timestamp"], "2023-11-14T22:13:20.500Z");
    const auto& data = event["data"];
    EXPECT_EQ(data["task_id"], "t1");
    EXPECT_EQ(data["item_index"], 1);
    EXPECT_EQ(data["item_count"], 2);
    EXPECT_EQ(data["attempt"], 3);
    EXPECT_EQ(data["voice_id"], "espeak.en");
    EXPECT_EQ(data["format"], "wav");
    EXPECT_EQ(data["content_type"], "audio/wav");
    EXPECT_EQ(data["sample_rate"], 22050);
    EXPECT_EQ(data["channels"], 1);
    EXPECT_EQ(data["duration_seconds"], 0.5);
    EXPECT_EQ(data["bytes"], audio.bytes.size());
    // Checked with OpenSSL's one-shot SHA256 and base64, independently of voxq's.
    unsigned char digest[32];
    SHA256(reinterpret_cast<const unsigned char*>(audio.bytes.data()), audio.bytes.size(), digest);
    char hex[65];
    for (int i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    EXPECT_EQ(data["sha256"], std::string(hex));
    const std::string b64 = data["audio_base64"];
    std::string decoded(b64.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()),
                                  static_cast<int>(b64.size()));
    ASSERT_GE(n, 0);
    decoded.resize(audio.bytes.size());
    EXPECT_EQ(decoded, audio.bytes);
    // A receiver gets back exactly the audio, and the event without it.
    std::string body = r.body;
    const auto got = unwrap_delivery(
        [&](const std::string& name) { return name == "content-type" ? r.content_type : ""; },
        body);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->audio, audio.bytes);
    EXPECT_EQ(got->task_id, "t1");
    EXPECT_EQ(got->item_index, 1);
    EXPECT_EQ(got->content_type, "audio/wav");
    EXPECT_EQ(got->event.find("audio_base64"), std::string::npos);
}

TEST(WebhookDelivery, RawIsTheAudioWithVoxqHeaders) {
    const Task task = two_item_task("123");  // a task id that looks like a number
    const ItemAudio audio = some_audio();
    const WebhookRequest r = delivery_request(task, 0, audio, WebhookPayload::Raw, 1700000000);
    EXPECT_EQ(r.body, audio.bytes);
    EXPECT_EQ(r.content_type, "audio/wav");
    EXPECT_EQ(r.headers.at("voxq-task-id"), "123");
    EXPECT_EQ(r.headers.at("voxq-item"), "0");
    EXPECT_EQ(r.headers.at("voxq-item-count"), "2");
    EXPECT_EQ(r.headers.at("voxq-voice"), "espeak.en");
    EXPECT_EQ(r.headers.at("voxq-attempt"), "3");
    EXPECT_EQ(r.headers.at("voxq-sample-rate"), "22050");
    EXPECT_EQ(r.headers.at("voxq-channels"), "1");
    EXPECT_EQ(r.headers.at("voxq-event"), "speech.item.ready");
    std::string body = r.body;
    auto header = [&](const std::string& name) {
        if (name == "content-type") return r.content_type;
        auto it = r.headers.find(name);
        return it == r.headers.end() ? std::string() : it->second;
    };
    const auto got = unwrap_delivery(header, body);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->audio, audio.bytes);
    const auto event = nlohmann::json::parse(got->event);
    EXPECT_EQ(event["data"]["sample_rate"], 22050);
    EXPECT_EQ(event["data"]["voice_id"], "espeak.en");
    EXPECT_EQ(event["data"]["task_id"], "123") << "a task id stays text";
}

// A receiver cuts a trailing audio_base64 out before parsing (the fast path).
// "} }" at the end is the same JSON but takes the whole parse: for bodies
// shaped to fool the cut, both must give the same delivery or the same error.
TEST(WebhookDelivery, TheAudioCutOutBeforeParsingGivesWhatAWholeParseGives) {
    const ItemAudio audio = some_audio();
    const std::string body =
        delivery_request(two_item_task("t1"), 0, audio, WebhookPayload::Json, 1).body;
    ASSERT_EQ(body.substr(body.size() - 3), "\"}}");
    const std::string b64 = nlohmann::json::parse(body)["data"]["audio_base64"];
    const std::string head = body.substr(0, body.find(R"(,"audio_base64")"));  // data still open
    auto outcome = [](std::string b) -> std::string {
        try {
            const auto d = unwrap_delivery(
                [](const std::string& name) {
                    return name == "content-type" ? std::string("application/json") : std::string();
                },
                b);
            if (!d) return "not a delivery";
            return "delivery " + d->task_id + " " + std::to_string(d->item_index) + " " +
                   d->content_type + " " + std::to_string(d->audio.size()) + " " + d->event;
        } catch (const ValidationError& e) {
            return std::string("refused: ") + e.what();
        }
    };
    const std::string other = "AAAA";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"as sent", body},
        {"trailing whitespace", body + " \n\t"},
        {"an earlier audio_base64 in data loses",
         head + R"(,"audio_base64":")" + other + R"(","note":1,"audio_base64":")" + b64 + "\"}}"},
        {"the audio in another child of the root",
         head + R"(},"extra":{"x":1,"audio_base64":")" + b64 + "\"}}"},
        {"a quoted look-alike before it",
         head + R"(,"note":"x\",\"audio_base64\":\"AAAA","audio_base64":")" + b64 + "\"}}"},
        {"an escape inside the base64",
         head + R"(,"audio_base64":"\u0041)" + b64.substr(1) + "\"}}"},
        {"not JSON: a comma after a brace",
         R"({"type":"speech.item.ready","data":{,"audio_base64":")" + b64 + "\"}}"},
        {"not JSON: two commas", head + R"(,,"audio_base64":")" + b64 + "\"}}"},
        {"a non-string audio_base64 before it",
         head + R"(,"audio_base64":5,"audio_base64":")" + b64 + "\"}}"},
        {"nested one deeper", head + R"(,"deep":{"audio_base64":")" + b64 + "\"}}}"},
        {"not base64 after all", head + R"(,"audio_base64":"AA=A")" + "\"}}"},
    };
    int fast = 0;
    for (const auto& [what, b] : cases) {
        std::string whole = b;
        const std::size_t end = whole.find_last_not_of(" \n\t");
        if (whole.compare(end - 1, 2, "}}") != 0) continue;
        whole.insert(end, " ");  // "} }": the same JSON, parsed whole
        EXPECT_EQ(outcome(b), outcome(whole)) << what;
        ++fast;
    }
    EXPECT_EQ(fast, static_cast<int>(cases.size()));
    EXPECT_EQ(outcome(body).rfind("delivery t1 0 audio/wav 1004 ", 0), 0U) << outcome(body);
}

TEST(WebhookDelivery, AReceiverRefusesWhatDoesNotAddUp) {
    const WebhookRequest r =
        delivery_request(two_item_task("t1"), 0, some_audio(), WebhookPayload::Json, 1);
    auto json_type = [](const std::string& name) {
        return name == "content-type" ? std::string("application/json") : std::string();
    };
    auto refused = [&](std::string body, const std::string& why) {
        try {
            (void)unwrap_delivery(json_type, body);
            ADD_FAILURE() << "accepted: " << why;
        } catch (const ValidationError& e) {
            EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
        }
    };
    auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
        auto j = nlohmann::json::parse(r.body);
        edit(j);
        return j.dump();
    };
    refused(edited([](auto& j) { j["data"]["sha256"] = std::string(64, '0'); }), "SHA-256");
    refused(edited([](auto& j) { j["data"]["bytes"] = 3; }), "the event says 3");
    refused(edited([](auto& j) { j["data"]["audio_base64"] = "***"; }), "not base64");
    refused(edited([](auto& j) { j["data"]["item_index"] = -1; }), "data.item_index");
    refused(edited([](auto& j) { j["data"]["item_index"] = 18446744073709551615ULL; }),
            "out of range");
    refused(edited([](auto& j) { j["data"]["task_id"] = 5; }), "data.task_id");
    refused(edited([](auto& j) { j["data"].erase("audio_base64"); }), "neither");
    refused(edited([](auto& j) { j["data"] = "x"; }), "no data object");
    // Not a voxq delivery at all: nothing to unwrap, and no error.
    for (std::string other : {std::string(R"({"test": 2432232314})"), std::string("[[[[[["),
                              std::string(100000, '[')}) {
        EXPECT_FALSE(unwrap_delivery(json_type, other));
    }
    std::string audio = "RIFF";
    EXPECT_FALSE(unwrap_delivery([](const std::string&) { return std::string(); }, audio));
    EXPECT_EQ(audio, "RIFF") << "a body that is not a delivery is left as it was";
}

TEST(ObjectStorage, PresignsAsAwsDocumentsIt) {
    // AWS's own example of a presigned GET (S3 API reference, "Authenticating
    // Requests: Using Query Parameters"): the same inputs give its signature.
    StorageConfig c;
    c.bucket = "examplebucket";
    c.region = "us-east-1";
    c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
    c.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    c.url_ttl = 86400;
    const AudioLink link = ObjectStorage(c).presigned_get("test.txt", 1369353600);  // 2013-05-24
    EXPECT_EQ(link.url,
              "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
              "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
              "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
              "&X-Amz-Signature="
              "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    EXPECT_EQ(link.expires_at, 1369353600 + 86400);
}

TEST(ObjectStorage, SettingsAreCheckedAndKeysAreStable) {
    for (const char* v : {"VOXQ_STORAGE_URL", "VOXQ_S3_ENDPOINT", "VOXQ_S3_REGION",
                          "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "VOXQ_STORAGE_URL_TTL"})
        unsetenv(v);
    EXPECT_FALSE(StorageConfig::from_env());
    setenv("VOXQ_STORAGE_URL", "s3://audio-bucket/tts/out/", 1);
    EXPECT_THROW((void)StorageConfig::from_env(), ConfigError) << "credentials are required";
    setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    const auto c = StorageConfig::from_env();
    ASSERT_TRUE(c);
    EXPECT_EQ(c->bucket, "audio-bucket");
    EXPECT_EQ(c->prefix, "tts/out");
    EXPECT_EQ(c->url_ttl, 7 * 24 * 3600);
    Task task;
    task.id = "t:1";
    EXPECT_EQ(storage_key(*c, task, 2, "ogg"), "tts/out/t:1/2.ogg");
    const auto refused = [](const char* variable, const char* value) {
        setenv(variable, value, 1);
        try {
            (void)StorageConfig::from_env();
            ADD_FAILURE() << variable << "=" << value << " was accepted";
        } catch (const ConfigError& e) {
            EXPECT_NE(std::string(e.what()).find(variable), std::string::npos) << e.what();
        }
    };
    refused("VOXQ_STORAGE_URL_TTL", "604801");  // beyond SigV4's 7 days
    unsetenv("VOXQ_STORAGE_URL_TTL");
    refused("VOXQ_S3_ENDPOINT", "ftp://x");
    refused("VOXQ_S3_ENDPOINT", "http://host/path");
    unsetenv("VOXQ_S3_ENDPOINT");
    refused("VOXQ_S3_REGION", "eu west");
    unsetenv("VOXQ_S3_REGION");
    refused("VOXQ_STORAGE_URL", "s3://UPPER");
    refused("VOXQ_STORAGE_URL", "https://bucket");
    refused("VOXQ_STORAGE_URL", "s3://bucket//double");
    for (const char* v : {"VOXQ_STORAGE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})
        unsetenv(v);
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
    EXPECT_EQ(header("User-Agent"), std::string("voxq/") + version());
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

TEST(WebhookSender, DeliveriesToOneReceiverShareAConnectionAndOneDroppedIsReplaced) {
    const WebhookSender sender(loopback_allowed());
    int port = 0;
    {
        Receiver r;
        port = r.port();
        for (int i = 0; i < 4; ++i) {
            const WebhookOutcome out = sender.send(audio_request(r.url()), 1);
            ASSERT_EQ(out.kind, WebhookOutcome::Kind::Delivered) << out.message;
        }
        EXPECT_EQ(r.hits(), 4);
        EXPECT_EQ(r.connections(), 1U) << "each delivery opened a connection of its own";
    }
    // The receiver restarted on the same port: the kept connection is dead, and
    // the next delivery goes out on a new one instead of failing.
    Receiver again(Receiver::Port{port});  // throws if the port was taken meanwhile
    const WebhookOutcome out = sender.send(audio_request(again.url()), 1);
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Delivered) << out.message;
    EXPECT_EQ(again.hits(), 1);
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

// A listening TCP socket on 127.0.0.1, on a free port (set in `port`).
int listen_on_loopback(int& port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd, 8);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    return fd;
}

// A raw TCP listener on 127.0.0.1 that reads the request and then either closes
// the connection or keeps it open without answering.
class SilentReceiver {
  public:
    explicit SilentReceiver(bool close_at_once) : close_(close_at_once) {
        fd_ = listen_on_loopback(port_);
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

// A raw HTTP/1.1 listener on 127.0.0.1 whose answers are bytes written as
// given: `answer(connection, request)` returns what to write after reading a
// whole request, or nullopt to close the connection without answering. Each
// connection is served on a thread of its own, so a kept one does not block
// a new one. Records the webhook-id of every request read.
class ScriptedReceiver {
  public:
    using Answer = std::function<std::optional<std::string>(int connection, int request)>;

    explicit ScriptedReceiver(Answer answer) : answer_(std::move(answer)) {
        fd_ = listen_on_loopback(port_);
        acceptor_ = std::thread([this] {
            for (int n = 0;; ++n) {
                const int c = accept(fd_, nullptr, nullptr);
                if (c < 0) return;
                std::lock_guard lock(mutex_);
                open_.push_back(c);
                served_.emplace_back([this, c, n] { serve(c, n); });
            }
        });
    }
    ~ScriptedReceiver() {
        shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        acceptor_.join();
        std::vector<std::thread> served;
        {
            std::lock_guard lock(mutex_);
            for (const int c : open_) shutdown(c, SHUT_RDWR);
            served.swap(served_);
        }
        for (auto& t : served) t.join();
        for (const int c : open_) ::close(c);  // only now: no thread reads them
    }
    ScriptedReceiver(const ScriptedReceiver&) = delete;
    ScriptedReceiver& operator=(const ScriptedReceiver&) = delete;

    [[nodiscard]] std::string url() const {
        return "http://127.0.0.1:" + std::to_string(port_) + "/hook";
    }
    std::vector<std::string> ids() {
        std::lock_guard lock(mutex_);
        return ids_;
    }

  private:
    void serve(int c, int connection) {
        std::string in;
        char buf[4096];
        for (int request = 0;; ++request) {
            std::size_t end = 0;
            while ((end = in.find("\r\n\r\n")) == std::string::npos) {
                const ssize_t n = read(c, buf, sizeof buf);
                if (n <= 0) return;
                in.append(buf, static_cast<std::size_t>(n));
            }
            const std::string head = in.substr(0, end);
            std::size_t length = 0;
            if (const auto at = head.find("Content-Length: "); at != std::string::npos)
                length = std::stoul(head.substr(at + 16));
            while (in.size() < end + 4 + length) {
                const ssize_t n = read(c, buf, sizeof buf);
                if (n <= 0) return;
                in.append(buf, static_cast<std::size_t>(n));
            }
            in.erase(0, end + 4 + length);
            {
                std::lock_guard lock(mutex_);
                const auto at = head.find("webhook-id: ");
                ids_.push_back(at == std::string::npos
                                   ? std::string()
                                   : head.substr(at + 12, head.find("\r\n", at) - at - 12));
            }
            const std::optional<std::string> out = answer_(connection, request);
            if (!out) return shutdown(c, SHUT_RDWR), void();
            if (write(c, out->data(), out->size()) < 0) return;
        }
    }

    Answer answer_;
    int fd_ = -1;
    int port_ = 0;
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<int> open_;            // guarded; closed by the destructor
    std::vector<std::thread> served_;  // guarded
    std::vector<std::string> ids_;     // guarded
};

constexpr const char* kOk = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
constexpr const char* kFailed = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";

WebhookRequest request_with_id(const std::string& url, const std::string& id) {
    WebhookRequest r = audio_request(url);
    r.message_id = id;
    return r;
}

// A receiver that answers one request twice leaves an answer waiting on the
// kept connection: the next delivery must hear its own answer, never that one.
TEST(WebhookSender, AnAnswerLeftOnAKeptConnectionIsNeverTakenForTheNextDelivery) {
    ScriptedReceiver r([](int connection, int request) -> std::optional<std::string> {
        if (connection == 0 && request == 0) return std::string(kOk) + kOk;
        return std::string(kFailed);
    });
    const WebhookSender sender(loopback_allowed());
    EXPECT_EQ(sender.send(request_with_id(r.url(), "msg_1"), 1).kind,
              WebhookOutcome::Kind::Delivered);
    const WebhookOutcome second = sender.send(request_with_id(r.url(), "msg_2"), 1);
    EXPECT_EQ(second.kind, WebhookOutcome::Kind::Transient) << second.message;
    EXPECT_EQ(second.http_status, 500);
    EXPECT_EQ(r.ids(), (std::vector<std::string>{"msg_1", "msg_2"}));
}

// A kept connection the receiver drops on reading the next request: the
// delivery is either sent again on a new connection, under the same
// webhook-id, or reported transient and in doubt. Never a success unheard.
TEST(WebhookSender, AKeptConnectionDroppedMidRequestIsResentUnderTheSameIdOrInDoubt) {
    ScriptedReceiver r([](int connection, int request) -> std::optional<std::string> {
        if (connection == 0 && request == 1) return std::nullopt;
        return std::string(kOk);
    });
    const WebhookSender sender(loopback_allowed());
    ASSERT_EQ(sender.send(request_with_id(r.url(), "msg_1"), 1).kind,
              WebhookOutcome::Kind::Delivered);
    const WebhookOutcome second = sender.send(request_with_id(r.url(), "msg_2"), 1);
    const std::vector<std::string> ids = r.ids();
    if (second.kind == WebhookOutcome::Kind::Delivered) {
        EXPECT_EQ(ids, (std::vector<std::string>{"msg_1", "msg_2", "msg_2"}));
    } else {
        EXPECT_EQ(second.kind, WebhookOutcome::Kind::Transient) << second.message;
        EXPECT_TRUE(second.in_doubt);
        EXPECT_EQ(ids, (std::vector<std::string>{"msg_1", "msg_2"}));
    }
}

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
    EXPECT_NE(index.find(R"("task_id":"tsk_1")"), std::string::npos) << index;
    // The event beside the audio, rebuilt from the raw delivery's voxq-* headers.
    const auto event = nlohmann::json::parse(slurp(dir.path() / "out" / "tsk_1.0.json"));
    EXPECT_EQ(event["type"], "speech.item.ready");
    EXPECT_EQ(event["data"]["task_id"], "tsk_1");
    EXPECT_EQ(event["data"]["item_index"], 0);
    EXPECT_EQ(event["data"]["bytes"], 18);
}

// Many senders at once: distinct deliveries are each saved once, with one log
// line each, while the commits are shared; the same webhook-id sent by every
// sender at the same moment is written once, and every sender hears 2xx.
TEST(WebhookSink, ConcurrentDeliveriesAreEachSavedOnceAndADuplicateRaceWritesOnce) {
    testing::TempDir dir;
    const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    WebhookSink sink(SinkConfig{"127.0.0.1", 0, dir.path(), {secret}, 300});
    sink.start();
    const std::string url = "http://127.0.0.1:" + std::to_string(sink.port()) + "/";
    constexpr int kSenders = 8;
    constexpr int kEach = 25;
    std::latch start(kSenders);
    std::atomic<int> refused = 0;
    auto request = [&](const std::string& task, const std::string& body) {
        WebhookRequest r = audio_request(url);
        r.message_id = task + ".0";
        r.headers["voxq-task-id"] = task;
        r.body = "RIFF....WAVEdata" + body;
        return r;
    };
    std::vector<std::thread> senders;
    for (int s = 0; s < kSenders; ++s) {
        senders.emplace_back([&, s] {
            WebhookConfig config = loopback_allowed();
            config.secrets = {secret};
            const WebhookSender sender(config);
            start.arrive_and_wait();
            for (int i = 0; i < kEach; ++i) {
                const std::string task = "tsk_" + std::to_string(s) + "_" + std::to_string(i);
                for (const WebhookRequest& r :
                     {request(task, task), request("tsk_dup", "same for all")}) {
                    const WebhookOutcome out = sender.send(r, unix_now());
                    if (out.kind != WebhookOutcome::Kind::Delivered) ++refused;
                }
            }
        });
    }
    for (std::thread& t : senders) t.join();
    EXPECT_EQ(refused.load(), 0);
    EXPECT_EQ(sink.received(), static_cast<std::size_t>(kSenders * kEach + 1));
    std::ifstream index(dir.path() / "deliveries.jsonl");
    std::set<std::string> logged;
    std::size_t lines = 0;
    for (std::string line; std::getline(index, line); ++lines) {
        logged.insert(nlohmann::json::parse(line).at("webhook_id").get<std::string>());
    }
    EXPECT_EQ(lines, static_cast<std::size_t>(kSenders * kEach + 1));
    EXPECT_EQ(logged.size(), lines);  // one line per delivery, no repeat
    EXPECT_EQ(logged.count("tsk_dup.0"), 1U);
    for (int s = 0; s < kSenders; ++s) {
        for (int i = 0; i < kEach; ++i) {
            const std::string task = "tsk_" + std::to_string(s) + "_" + std::to_string(i);
            EXPECT_EQ(slurp(dir.path() / (task + ".0.wav")), "RIFF....WAVEdata" + task);
            EXPECT_TRUE(std::filesystem::exists(dir.path() / (task + ".0.json"))) << task;
        }
    }
    EXPECT_EQ(slurp(dir.path() / "tsk_dup.0.wav"), "RIFF....WAVEdatasame for all");
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        EXPECT_NE(entry.path().extension(), ".partial") << entry.path();
    }
}

// A delivery whose file cannot be written is answered 507 and leaves nothing
// behind: no partial file, and its webhook-id free for the sender's retry.
TEST(WebhookSink, AFailedWriteIs507AndTheRetryOfTheSameIdIsSaved) {
    testing::TempDir dir;
    WebhookSink sink(SinkConfig{"127.0.0.1", 0, dir.path(), {}, 300});
    sink.start();
    const std::string url = "http://127.0.0.1:" + std::to_string(sink.port()) + "/";
    // A non-empty folder where the audio's temporary file goes: it cannot be made.
    const std::filesystem::path blocker = dir.path() / "tsk_1.0.wav.partial";
    std::filesystem::create_directories(blocker / "inside");
    const WebhookSender sender(loopback_allowed());
    WebhookOutcome out = sender.send(audio_request(url), unix_now());
    EXPECT_EQ(out.http_status, 507) << out.message;
    EXPECT_EQ(sink.received(), 0U);
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "tsk_1.0.json.partial"));
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "tsk_1.0.wav"));
    std::filesystem::remove_all(blocker);
    out = sender.send(audio_request(url), unix_now());  // the retry: not blocked by the first
    EXPECT_EQ(out.kind, WebhookOutcome::Kind::Delivered) << out.message;
    EXPECT_EQ(sink.received(), 1U);
    EXPECT_EQ(slurp(dir.path() / "tsk_1.0.wav"), audio_request(url).body);
}

// A delivery replayed to a sink started again on the same folder (its memory of
// saved ids is gone): the file on disk says it is saved; nothing is rewritten.
TEST(WebhookSink, AReplayAfterARestartIsAnsweredSavedAndNotWrittenAgain) {
    testing::TempDir dir;
    const WebhookSender sender(loopback_allowed());
    for (int run = 0; run < 2; ++run) {
        WebhookSink sink(SinkConfig{"127.0.0.1", 0, dir.path(), {}, 300});
        sink.start();
        const std::string url = "http://127.0.0.1:" + std::to_string(sink.port()) + "/";
        WebhookRequest r = audio_request(url);
        if (run == 1)
            r.body = "RIFF....WAVEdata-changed";  // a replay may differ: kept as first saved
        const WebhookOutcome out = sender.send(r, unix_now());
        EXPECT_EQ(out.kind, WebhookOutcome::Kind::Delivered) << out.message;
        EXPECT_EQ(sink.received(), run == 0 ? 1U : 0U);
    }
    EXPECT_EQ(slurp(dir.path() / "tsk_1.0.wav"), audio_request("").body);
    std::ifstream index(dir.path() / "deliveries.jsonl");
    std::size_t lines = 0;
    for (std::string line; std::getline(index, line);) ++lines;
    EXPECT_EQ(lines, 1U);
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
