// The HTTP API over real HTTP on 127.0.0.1, with the real SQLite store.
#include "voxq/server.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "support/audio.hpp"
#include "support/sqlite.hpp"
#include "support/tasks.hpp"
#include "support/temp_dir.hpp"
#include "voxq/audio_format.hpp"
#include "voxq/errors.hpp"
#include "voxq/speech.hpp"

namespace voxq {
namespace {

using nlohmann::json;
using testing::TempDir;

const std::string kToken = "test-token-0123456789abcdef";

json task_json(const std::string& text, const std::string& voice = "espeak.en-us",
               const std::string& url = "http://127.0.0.1:9/hook") {
    return {
        {"items", {{{"request", {{"text", text}, {"voice_id", voice}}}, {"response_url", url}}}}};
}

class Api : public ::testing::Test {
  protected:
    void SetUp() override { open(); }
    void open(ServerConfig server_config = {}, const Worker* worker = nullptr,
              std::shared_ptr<SpeechEngine> engines = nullptr) {
        server_.reset();
        if (!queue_) {
            config_.database_url = dir_.sqlite_url();
            config_.sqlite_busy_timeout_ms = 50;
            queue_ = std::make_unique<WorkerQueue>(config_);
            queue_->initialize();
        }
        server_config.port = 0;
        server_ = std::make_unique<ApiServer>(*queue_, server_config, worker, std::move(engines));
        server_->start();
        client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    }
    struct Reply {
        int status = 0;
        json body;
        std::string text;
        std::string content_type;
    };
    Reply call(const std::string& method, const std::string& path, const std::string& body = "",
               const httplib::Headers& headers = {}) {
        httplib::Result r = method == "GET"
                                ? client_->Get(path, headers)
                                : client_->Post(path, headers, body, "application/json");
        EXPECT_TRUE(r) << method << " " << path << ": " << httplib::to_string(r.error());
        if (!r) return {};
        Reply reply{r->status, json::parse(r->body, nullptr, false), r->body,
                    r->get_header_value("Content-Type")};
        return reply;
    }
    static void expect_error(const Reply& r, int status, const std::string& code,
                             const std::string& message_part) {
        EXPECT_EQ(r.status, status) << r.text;
        ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.text;
        EXPECT_EQ(r.body["error"]["code"], code) << r.text;
        EXPECT_NE(r.body["error"]["message"].get<std::string>().find(message_part),
                  std::string::npos)
            << r.text;
    }
    std::int64_t total() { return queue_->get_queue_stats()["total"]; }

    TempDir dir_;
    QueueConfig config_;
    std::unique_ptr<WorkerQueue> queue_;
    std::unique_ptr<ApiServer> server_;
    std::unique_ptr<httplib::Client> client_;
};

TEST_F(Api, EveryEndpointDoesItsOperation) {
    // One task: 201 with the stored task.
    Reply r = call("POST", "/v1/tasks", task_json("Hello").dump());
    ASSERT_EQ(r.status, 201) << r.text;
    const std::string id = r.body["id"];
    EXPECT_EQ(r.body["state"], "PENDING");
    EXPECT_EQ(queue_->get_task(id).items[0].request.text, "Hello");
    // Many, in both shapes.
    r = call("POST", "/v1/tasks", json{{"tasks", {task_json("a"), task_json("b")}}}.dump());
    ASSERT_EQ(r.status, 201) << r.text;
    EXPECT_EQ(r.body["created"], 2);
    EXPECT_EQ(r.body["tasks"].size(), 2U);
    r = call("POST", "/v1/tasks", json::array({task_json("c")}).dump());
    ASSERT_EQ(r.status, 201) << r.text;
    EXPECT_EQ(total(), 4);
    // Get, with the history.
    r = call("GET", "/v1/tasks/" + id);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body["id"], id);
    EXPECT_TRUE(r.body.contains("error_history"));
    // Transitions.
    r = call("POST", "/v1/tasks/" + id + "/cancel");
    ASSERT_EQ(r.status, 200) << r.text;
    EXPECT_EQ(r.body["state"], "CANCELLED");
    expect_error(call("POST", "/v1/tasks/" + id + "/cancel"), 409, "invalid_transition",
                 "CANCELLED");
    expect_error(call("POST", "/v1/tasks/" + id + "/resume"), 409, "invalid_transition",
                 "resume needs DISCARDED");
    const Task claimed = queue_->dequeue(1).at(0);
    r = call("POST", "/v1/tasks/" + claimed.id + "/discard");
    ASSERT_EQ(r.status, 200) << r.text;
    EXPECT_EQ(r.body["state"], "DISCARDED");
    EXPECT_EQ(r.body["last_error"], "discarded by an operator");
    r = call("POST", "/v1/tasks/" + claimed.id + "/resume");
    ASSERT_EQ(r.status, 200) << r.text;
    EXPECT_EQ(r.body["state"], "PENDING");
    // List with a filter, and stats.
    r = call("GET", "/v1/tasks?state=cancelled");
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body["tasks"].size(), 1U);
    EXPECT_EQ(r.body["tasks"][0]["id"], id);
    r = call("GET", "/v1/stats");
    EXPECT_EQ(r.body["pending"], 3);
    EXPECT_EQ(r.body["cancelled"], 1);
    EXPECT_EQ(r.body["total"], 4);
    EXPECT_EQ(call("GET", "/v1/stats?queue=nothing-here").body["total"], 0);
    r = call("GET", "/healthz");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body["status"], "ok");
    r = call("GET", "/");
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.text.find("<title>voxq</title>"), std::string::npos);
}

TEST_F(Api, ADamagedStoreFailsHealthzAndMetricsSaySo) {
    EXPECT_NE(call("GET", "/metrics").text.find("voxq_store_healthy 1\n"), std::string::npos);
    for (int batch = 0; batch < 4; ++batch) {
        std::vector<Task> tasks = testing::make_tasks(500);
        for (Task& t : tasks) t.items[0].request.text = std::string(400, 'a' + batch);
        queue_->enqueue(tasks);
    }
    server_.reset();
    queue_.reset();
    testing::write_garbage_mid_file(testing::sqlite_path(config_), 32 * 1024);
    open();
    expect_error(call("GET", "/healthz"), 503, "store_damaged", "voxq check");
    const Reply metrics = call("GET", "/metrics");
    EXPECT_EQ(metrics.status, 200);
    EXPECT_NE(metrics.text.find("voxq_store_healthy 0\n"), std::string::npos) << metrics.text;
    const Reply refused = call("POST", "/v1/tasks", task_json("x").dump());
    EXPECT_GE(refused.status, 500) << refused.text;
    EXPECT_EQ(total(), 2000);
}

TEST_F(Api, VoicesComeFromTheEngines) {
    open({}, nullptr, SpeechEngines::from_map({}, VOXQ_ESPEAK_HELPER_PATH));
    const Reply r = call("GET", "/v1/voices");
    ASSERT_EQ(r.status, 200);
    const auto voices = r.body["voices"].get<std::vector<std::string>>();
    EXPECT_NE(std::find(voices.begin(), voices.end(), "espeak.en-us"), voices.end());
}

// The OpenAPI document is written by hand; its list of formats is held to the
// one table the server validates with.
TEST_F(Api, TheOpenApiDocumentListsTheFormatsOfTheTable) {
    open();
    const Reply r = call("GET", "/v1/openapi.json");
    ASSERT_EQ(r.status, 200);
    std::vector<std::string> documented;
    for (const json& node :
         r.body["components"]["schemas"]["Request"]["properties"]["format"]["enum"]) {
        documented.push_back(node.get<std::string>());
    }
    std::vector<std::string> table;
    for (const AudioFormat& f : audio_format_table()) table.emplace_back(f.name);
    EXPECT_EQ(documented, table);
}

TEST_F(Api, ErrorsAreJsonWithTheRightStatusAndChangeNothing) {
    expect_error(call("POST", "/v1/tasks", "{not json"), 400, "invalid_request", "not valid JSON");
    expect_error(call("POST", "/v1/tasks", R"({"items": []})"), 400, "invalid_request",
                 "items: a task needs at least one item");
    expect_error(call("POST", "/v1/tasks", R"({"items": [], "scheduled_at": 5})"), 400,
                 "invalid_request", "scheduled_at");
    expect_error(call("POST", "/v1/tasks", "42"), 400, "invalid_request", "body: must be");
    expect_error(call("POST", "/v1/tasks", R"({"tasks": []})"), 400, "invalid_request",
                 "at least one task");
    json bad = task_json("x");
    bad["items"][0]["request"]["speed"] = 9;
    expect_error(call("POST", "/v1/tasks", bad.dump()), 400, "invalid_request",
                 "items[0].request.speed");
    expect_error(call("GET", "/v1/tasks?state=bogus"), 400, "invalid_request", "state: 'bogus'");
    expect_error(call("GET", "/v1/tasks?limit=0"), 400, "invalid_request", "limit: must be");
    expect_error(call("GET", "/v1/tasks?limit=ten"), 400, "invalid_request", "not an integer");
    expect_error(call("GET", "/v1/tasks?cursor=../../etc"), 400, "invalid_request", "cursor");
    expect_error(call("GET", "/v1/tasks/01J0000000000000000000000Z"), 404, "not_found",
                 "01J0000000000000000000000Z");
    expect_error(call("POST", "/v1/tasks/01J0000000000000000000000Z/cancel"), 404, "not_found",
                 "not found");
    expect_error(call("GET", "/v1/nothing"), 404, "not_found", "no route GET /v1/nothing");
    // A text past the limit is a 400 naming the field; a body past the limit is a 413.
    expect_error(call("POST", "/v1/tasks", task_json(std::string(10'001, 'a')).dump()), 400,
                 "invalid_request", "items[0].request.text");
    expect_error(call("POST", "/v1/tasks", task_json(std::string(5 << 20, 'a')).dump()), 413,
                 "too_large", "VOXQ_API_MAX_BODY_BYTES");
    EXPECT_EQ(total(), 0) << "a refused request stored something";
}

TEST_F(Api, ABatchWithOneBadTaskStoresNone) {
    json tasks = json::array();
    for (int i = 0; i < 5; ++i) tasks.push_back(task_json("task " + std::to_string(i)));
    tasks[3]["items"][0]["request"]["voice_id"] = "no-dot";
    expect_error(call("POST", "/v1/tasks", json{{"tasks", tasks}}.dump()), 400, "invalid_request",
                 "task 3: items[0].request.voice_id");
    EXPECT_EQ(total(), 0);
    tasks[3]["items"][0]["request"]["voice_id"] = "espeak.en-us";
    tasks[4]["id"] = "bad id!";
    expect_error(call("POST", "/v1/tasks", tasks.dump()), 400, "invalid_request", "task 4: id");
    EXPECT_EQ(total(), 0);
    ServerConfig small;
    small.max_tasks_per_request = 3;
    open(small);
    tasks.erase(4);
    expect_error(call("POST", "/v1/tasks", tasks.dump()), 400, "invalid_request", "at most 3");
    EXPECT_EQ(total(), 0);
}

TEST_F(Api, ADuplicateIdIsAConflict) {
    json t = task_json("one");
    t["id"] = "my-task-1";
    ASSERT_EQ(call("POST", "/v1/tasks", t.dump()).status, 201);
    expect_error(call("POST", "/v1/tasks", t.dump()), 409, "duplicate", "my-task-1");
}

TEST_F(Api, TheTokenGuardsEveryV1CallAndNothingElse) {
    ServerConfig guarded;
    guarded.api_token = kToken;
    open(guarded);
    expect_error(call("GET", "/v1/stats"), 401, "unauthorized", "Bearer");
    expect_error(call("POST", "/v1/tasks", task_json("x").dump()), 401, "unauthorized", "Bearer");
    expect_error(call("GET", "/v1/stats", "", {{"Authorization", "Bearer " + kToken + "x"}}), 401,
                 "unauthorized", "");
    expect_error(call("GET", "/v1/stats", "", {{"Authorization", kToken}}), 401, "unauthorized",
                 "");
    EXPECT_EQ(total(), 0);
    const httplib::Headers auth{{"Authorization", "Bearer " + kToken}};
    EXPECT_EQ(call("POST", "/v1/tasks", task_json("x").dump(), auth).status, 201);
    EXPECT_EQ(call("GET", "/v1/stats", "", auth).body["total"], 1);
    EXPECT_EQ(call("GET", "/healthz").status, 200);
    EXPECT_EQ(call("GET", "/metrics").status, 200);
    EXPECT_EQ(call("GET", "/").status, 200);
}

TEST_F(Api, ListeningBeyondLoopbackNeedsAToken) {
    ServerConfig open_to_all;
    open_to_all.host = "0.0.0.0";
    open_to_all.port = 0;
    try {
        ApiServer server(*queue_, open_to_all);
        FAIL() << "started on 0.0.0.0 without a token";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("needs VOXQ_API_TOKEN"), std::string::npos);
    }
    open_to_all.api_token = kToken;
    ApiServer server(*queue_, open_to_all);
    EXPECT_GT(server.port(), 0);
}

TEST_F(Api, PagesThroughAThousandTasksWithoutGapsOrRepeats) {
    for (int batch = 0; batch < 10; ++batch) {
        json tasks = json::array();
        for (int i = 0; i < 100; ++i)
            tasks.push_back(task_json("task " + std::to_string(batch * 100 + i)));
        ASSERT_EQ(call("POST", "/v1/tasks", tasks.dump()).status, 201);
    }
    std::set<std::string> seen;
    std::string cursor;
    int pages = 0;
    do {
        const Reply r =
            call("GET", "/v1/tasks?limit=37" + (cursor.empty() ? "" : "&cursor=" + cursor));
        ASSERT_EQ(r.status, 200) << r.text;
        for (const auto& t : r.body["tasks"]) EXPECT_TRUE(seen.insert(t["id"]).second) << "repeat";
        cursor = r.body["next_cursor"].is_null() ? "" : r.body["next_cursor"].get<std::string>();
        ++pages;
    } while (!cursor.empty() && pages < 100);
    EXPECT_EQ(seen.size(), 1000U);
    EXPECT_EQ(pages, 28);  // ceil(1000 / 37)
}

// Parses Prometheus text: every sample line is `name{labels} value`.
std::map<std::string, double> parse_metrics(const std::string& text) {
    static const std::regex sample(
        R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|\+Inf|NaN)$)");
    std::map<std::string, double> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0)
            continue;
        std::smatch m;
        EXPECT_TRUE(std::regex_match(line, m, sample)) << "not Prometheus text: " << line;
        if (!m.empty()) out[m[1].str() + m[2].str()] = std::stod(m[3]);
    }
    return out;
}

TEST_F(Api, MetricsParseAndMatchTheStats) {
    json tasks = json::array();
    for (int i = 0; i < 6; ++i) {
        json t = task_json("m" + std::to_string(i));
        t["queue"] = i % 2 ? "odd" : "even";
        tasks.push_back(t);
    }
    ASSERT_EQ(call("POST", "/v1/tasks", tasks.dump()).status, 201);
    const Task t = queue_->dequeue(1).at(0);
    queue_->mark_as_complete(t.id);
    (void)queue_->dequeue(1);
    const Reply r = call("GET", "/metrics");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type.rfind("text/plain", 0), 0U);
    const auto metrics = parse_metrics(r.text);
    const Reply stats = call("GET", "/v1/stats");
    for (const char* state :
         {"pending", "processing", "completed", "retryable", "cancelled", "discarded"}) {
        double sum = 0;
        for (const char* q : {"even", "odd"})
            sum += metrics.count(std::string("voxq_tasks{queue=\"") + q + "\",state=\"" + state +
                                 "\"}")
                       ? metrics.at(std::string("voxq_tasks{queue=\"") + q + "\",state=\"" + state +
                                    "\"}")
                       : 0;
        EXPECT_EQ(sum, stats.body[state].get<double>()) << state;
    }
    EXPECT_EQ(metrics.count("voxq_oldest_due_task_age_seconds{queue=\"even\"}"), 1U);
}

TEST_F(Api, AStoreThatCannotWriteIs503) {
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.file("queue.db").c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    expect_error(call("POST", "/v1/tasks", task_json("x").dump()), 503, "store_unavailable",
                 "locked");
    sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(other);
    EXPECT_EQ(call("POST", "/v1/tasks", task_json("x").dump()).status, 201);
}

TEST_F(Api, TheEmbeddedWorkerDeliversToTheInboxAndMetricsCountIt) {
    const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    WebhookConfig webhooks;
    webhooks.allow_nets.push_back(IpNetwork::parse("127.0.0.0/8"));
    webhooks.secrets = {secret};
    const auto engines = SpeechEngines::from_map({}, VOXQ_ESPEAK_HELPER_PATH);
    WorkerOptions options;
    options.concurrency = 2;
    Worker worker(*queue_, options, engines, std::make_shared<WebhookSender>(webhooks));
    ServerConfig server_config;
    server_config.inbox_secrets = {secret};
    open(server_config, &worker, engines);
    worker.start();
    const std::string inbox = "http://127.0.0.1:" + std::to_string(server_->port()) + "/inbox";
    json t = task_json("Delivered to the inbox.", "espeak.en-us", inbox);
    t["items"][0]["request"]["format"] = "opus";
    Reply r = call("POST", "/v1/tasks", t.dump());
    ASSERT_EQ(r.status, 201);
    const std::string id = r.body["id"];
    for (int i = 0; i < 1000 && queue_->get_task(id).state != TaskState::COMPLETED; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    worker.stop();
    ASSERT_EQ(queue_->get_task(id).state, TaskState::COMPLETED) << queue_->get_task(id).last_error;
    r = call("GET", "/inbox/" + id + ".0");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "application/octet-stream");  // never what the sender claimed
    const test::DecodedAudio audio = test::decode_audio(r.text);
    ASSERT_TRUE(audio.ok) << audio.error;
    EXPECT_GT(audio.seconds(), 0.5);
    // An unsigned delivery to the inbox is refused.
    expect_error(
        call("POST", "/inbox", "x", {{"webhook-id", "forged"}, {"webhook-timestamp", "1"}}), 401,
        "unauthorized", "signature");
    expect_error(call("GET", "/inbox/forged"), 404, "not_found", "forged");
    const auto metrics = parse_metrics(call("GET", "/metrics").text);
    EXPECT_EQ(metrics.at("voxq_webhook_deliveries_total{outcome=\"delivered\"}"), 1);
    EXPECT_EQ(metrics.at("voxq_worker_tasks_total{outcome=\"completed\"}"), 1);
    EXPECT_EQ(metrics.at("voxq_task_duration_seconds_count"), 1);
    EXPECT_EQ(metrics.at("voxq_synthesis_duration_seconds_count"), 1);
    server_.reset();  // the server reads the worker's counters: it goes first
}

}  // namespace
}  // namespace voxq
