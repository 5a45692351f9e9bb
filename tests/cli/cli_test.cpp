// The voxq command, run as a user runs it: exit statuses, one-line errors, JSON.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/sqlite.hpp"
#include "support/temp_dir.hpp"
#include "voxq/config.hpp"
#include "voxq/webhook.hpp"

namespace voxq {
namespace {

using testing::TempDir;

struct Result {
    int status;
    std::string out;
    std::string err;
};

class Cli : public ::testing::Test {
  protected:
    Result run(const std::string& args, const std::string& env = "") {
        const std::string out = dir_.file("out"), err = dir_.file("err");
        const std::string cmd = "cd '" + dir_.path().string() + "' && env -u QUEUE_DATABASE_URL " +
                                env + " QUEUE_DATABASE_URL='" + url_ + "' " + VOXQ_CLI_PATH + " " +
                                args + " >'" + out + "' 2>'" + err + "'";
        const int raw = std::system(cmd.c_str());
        return {WEXITSTATUS(raw), slurp(out), slurp(err)};
    }
    static std::string slurp(const std::string& path) {
        std::ifstream in(path);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    std::string write_file(const std::string& name, const std::string& text) {
        std::ofstream(dir_.file(name)) << text;
        return dir_.file(name);
    }

    TempDir dir_;
    std::string url_ = dir_.sqlite_url();
};

constexpr const char* kSecretForConfig = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

constexpr const char* kTask =
    R"({"items":[{"request":{"text":"Hi","voice_id":"espeak.en-us"},"response_url":"http://127.0.0.1:9/cb"}]})";

// voxq config: the first thing an operator runs.
TEST_F(Cli, ConfigShowsEverySettingItsValueAndSourceWithSecretsRedacted) {
    url_ = "postgresql://app:pg-pass-7781@db.internal/voxq";
    const Result r = run(
        "config --json",
        "VOXQ_API_TOKEN=token-5d1e0f9a2b3c4d VOXQ_WEBHOOK_SECRET=" + std::string(kSecretForConfig) +
            " AWS_SECRET_ACCESS_KEY=aws-secret-91c3 VOXQ_ENGINE_KOKORO_URL=http://127.0.0.1:9/v1"
            " VOXQ_ENGINE_KOKORO_API_KEY=sk-kokoro-0a9f QUEUE_MAX_ATTEMPTS=7 VOXQ_RETRYS=3");
    ASSERT_EQ(r.status, 0) << r.err;
    for (const char* secret : {"pg-pass-7781", "token-5d1e0f9a2b3c4d", "aws-secret-91c3",
                               "sk-kokoro-0a9f", kSecretForConfig + 6}) {
        EXPECT_EQ(r.out.find(secret), std::string::npos) << secret << " shown:\n" << r.out;
        EXPECT_EQ(r.err.find(secret), std::string::npos) << secret;
    }
    const auto j = nlohmann::json::parse(r.out);
    std::map<std::string, nlohmann::json> by_name;
    for (const auto& s : j["settings"]) by_name[s["variable"]] = s;
    // Every field of QueueConfig is there, with QueueConfig's own default.
    const QueueConfig defaults;
    for (const ConfigField& f : config_fields()) {
        ASSERT_TRUE(by_name.count(std::string(f.variable))) << f.variable << " missing";
    }
    EXPECT_EQ(by_name["QUEUE_MAX_ATTEMPTS"]["value"], "7");
    EXPECT_EQ(by_name["QUEUE_MAX_ATTEMPTS"]["source"], "environment");
    EXPECT_EQ(by_name["QUEUE_VISIBILITY_TIMEOUT"]["value"],
              std::to_string(static_cast<int>(defaults.default_visibility_timeout)));
    EXPECT_EQ(by_name["QUEUE_VISIBILITY_TIMEOUT"]["source"], "default");
    EXPECT_EQ(by_name["QUEUE_DATABASE_URL"]["value"], "postgresql://app:***@db.internal/voxq");
    EXPECT_EQ(by_name["VOXQ_API_TOKEN"]["value"], "***");
    EXPECT_EQ(by_name["VOXQ_ENGINE_KOKORO_API_KEY"]["value"], "***");
    EXPECT_EQ(by_name["VOXQ_ENGINE_KOKORO_URL"]["value"], "http://127.0.0.1:9/v1");
    EXPECT_EQ(by_name["VOXQ_LOG_LEVEL"]["value"], "info");
    const auto& unknown = j["unknown"];
    EXPECT_NE(std::find(unknown.begin(), unknown.end(), "VOXQ_RETRYS"), unknown.end())
        << "a typo is pointed out: " << unknown;
    EXPECT_EQ(std::find(unknown.begin(), unknown.end(), "QUEUE_MAX_ATTEMPTS"), unknown.end());
}

TEST_F(Cli, ConfigNamesEveryBadSettingAndFails) {
    const Result r = run("config", "VOXQ_WEBHOOK_TIMEOUT=soon VOXQ_LOG_FORMAT=xml");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("VOXQ_LOG_FORMAT: 'xml'"), std::string::npos) << r.err;
    // The log setting fails the whole command before `config` runs; alone, the
    // timeout is named.
    const Result timeout = run("config", "VOXQ_WEBHOOK_TIMEOUT=soon QUEUE_BATCH_SIZE=0");
    EXPECT_EQ(timeout.status, 1);
    EXPECT_NE(timeout.err.find("VOXQ_WEBHOOK_TIMEOUT: 'soon'"), std::string::npos) << timeout.err;
    EXPECT_NE(timeout.err.find("QUEUE_BATCH_SIZE: '0'"), std::string::npos) << timeout.err;
    EXPECT_NE(timeout.out.find("VOXQ_WEBHOOK_TIMEOUT"), std::string::npos)
        << "the table still prints";
}

TEST_F(Cli, ConfigEnvFileListsEverySettingAndWritesNoSecret) {
    url_ = "sqlite:////var/lib/voxq/queue.db";
    const Result r = run("config --env-file",
                         // A value with a newline would forge a setting of its own in the file.
                         "VOXQ_API_TOKEN=token-5d1e0f9a2b3c4d VOXQ_WEBHOOK_PAYLOAD=raw "
                         "VOXQ_ESPEAK_HELPER='/x\nQUEUE_MAX_ATTEMPTS=99'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.find("token-5d1e0f9a2b3c4d"), std::string::npos);
    EXPECT_NE(r.out.find("\nQUEUE_DATABASE_URL=sqlite:////var/lib/voxq/queue.db\n"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("\nVOXQ_WEBHOOK_PAYLOAD=raw\n"), std::string::npos);
    EXPECT_NE(r.out.find("\n#VOXQ_API_TOKEN=\n"), std::string::npos);
    EXPECT_NE(r.out.find("\n#QUEUE_MAX_ATTEMPTS=3\n"), std::string::npos);
    EXPECT_EQ(r.out.find("\nQUEUE_MAX_ATTEMPTS=99"), std::string::npos) << r.out;
    for (const ConfigField& f : config_fields()) {
        EXPECT_NE(r.out.find(std::string(f.variable) + "="), std::string::npos) << f.variable;
    }
    // Every line is a comment, blank, or NAME=value.
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] == '#') continue;
        EXPECT_NE(line.find('='), std::string::npos) << line;
    }
}

TEST_F(Cli, CheckSaysOkForAHealthyStoreAndOneLinePerFindingOtherwise) {
    ASSERT_EQ(run("migrate").status, 0);
    ASSERT_EQ(run("enqueue --text Hi --voice espeak.en-us --url http://127.0.0.1:9/cb").status, 0);
    Result r = run("check");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "ok\n");
    QueueConfig config;
    config.database_url = url_;
    testing::sqlite_exec(config, "UPDATE task_counts SET n = 7");
    r = run("check");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.out, "counters: queue \"default\" PENDING: the counter says 7, the rows are 1\n");
    r = run("check --json");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(nlohmann::json::parse(r.out).at(0).at("kind"), "counters");
    // A path with no database is a finding, and no file is made there.
    const std::string missing = dir_.file("typo.db");
    r = run("--database-url sqlite:///" + missing + " check");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.out, "schema: no database at " + missing + "\n");
    EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(Cli, EnqueueShowCancelAndStats) {
    Result r =
        run("enqueue --text 'Hello there' --voice espeak.en-us --url http://127.0.0.1:9/cb "
            "--priority 3 --queue speech");
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(id.size(), 26U);

    r = run("show " + id + " --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto task = nlohmann::json::parse(r.out);
    EXPECT_EQ(task["state"], "PENDING");
    EXPECT_EQ(task["priority"], 3);
    EXPECT_EQ(task["queue"], "speech");
    EXPECT_EQ(task["items"][0]["request"]["text"], "Hello there");

    EXPECT_EQ(run("cancel " + id).status, 0);
    r = run("cancel " + id);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "voxq: task " + id + " is CANCELLED; cancel needs PENDING\n");

    r = run("stats --json");
    ASSERT_EQ(r.status, 0);
    const auto stats = nlohmann::json::parse(r.out);
    EXPECT_EQ(stats["cancelled"], 1);
    EXPECT_EQ(stats["total"], 1);
    EXPECT_EQ(stats.size(), 7U);
}

TEST_F(Cli, EnqueueJsonLinesIsAllOrNothingAndPrintsIds) {
    std::string lines;
    for (int i = 0; i < 250; ++i) lines += std::string(kTask) + "\n";
    const std::string good = write_file("good.jsonl", lines);
    Result r = run("enqueue --file " + good + " --json", "QUEUE_BATCH_SIZE=100");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out).size(), 250U);

    const std::string bad = write_file(
        "bad.jsonl",
        std::string(kTask) + "\n" + std::string(kTask) + "\n" +
            R"({"items":[{"request":{"text":"","voice_id":"espeak.en-us"},"response_url":"http://x/"}]})" +
            "\n");
    r = run("enqueue --file " + bad);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "voxq: line 3: items[0].request.text: must not be empty\n");
    r = run("stats --json");
    EXPECT_EQ(nlohmann::json::parse(r.out)["total"], 250) << "the bad file stored nothing";

    r = run("enqueue - < " + good);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 250);
}

TEST_F(Cli, ListPagesAsJson) {
    const std::string file =
        write_file("t.jsonl", std::string(kTask) + "\n" + kTask + "\n" + kTask + "\n");
    ASSERT_EQ(run("enqueue --file " + file).status, 0);
    Result r = run("list --limit 2 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    auto page = nlohmann::json::parse(r.out);
    EXPECT_EQ(page["tasks"].size(), 2U);
    ASSERT_TRUE(page["next_cursor"].is_string());
    r = run("list --limit 2 --json --cursor " + page["next_cursor"].get<std::string>());
    page = nlohmann::json::parse(r.out);
    EXPECT_EQ(page["tasks"].size(), 1U);
    EXPECT_TRUE(page["next_cursor"].is_null());
    r = run("list --state pending");
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("PENDING"), std::string::npos);
}

TEST_F(Cli, ErrorsAndUsage) {
    Result r = run("stats", "QUEUE_MAX_ATTEMPTS=abc");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "voxq: QUEUE_MAX_ATTEMPTS: 'abc' is not an integer\n");

    r = run("show NOPE");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "voxq: task NOPE not found\n");

    EXPECT_EQ(run("no-such-command").status, 2);
    EXPECT_EQ(run("").status, 2);
    EXPECT_EQ(run("enqueue --text hi").status, 2);
    r = run("purge --state PENDING --older-than 1d");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("PENDING tasks are not finished"), std::string::npos) << r.err;
    r = run("purge --state COMPLETED --older-than soon");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("'soon'"), std::string::npos) << r.err;

    r = run("--help");
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("enqueue"), std::string::npos);
    EXPECT_EQ(run("list --help").status, 0);
    r = run("secret");
    EXPECT_EQ(r.status, 0);
    check_webhook_secret(r.out.substr(0, r.out.size() - 1), "voxq secret");  // 32 bytes
    EXPECT_NE(run("secret").out, r.out);
    r = run("version");
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out.rfind("voxq ", 0), 0U);
}

TEST_F(Cli, SaySynthesizesAWavFile) {
    Result r = run("say --voice espeak.en-us --text 'Hello from the command line.' -o hello.wav");
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string wav = slurp(dir_.file("hello.wav"));
    ASSERT_GT(wav.size(), 44U + 22050U);  // more than half a second
    EXPECT_EQ(wav.substr(0, 4), "RIFF");
    EXPECT_EQ(wav.substr(8, 4), "WAVE");
    r = run("say --voice espeak.no-such-voice --text hi -o x.wav");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("no voice 'no-such-voice'"), std::string::npos) << r.err;
    r = run("say --voice espeak.en-us --text hi --format aac -o x.aac");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("'aac' is not one of wav, pcm, mp3, opus, flac"), std::string::npos)
        << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir_.file("x.aac"))) << "a failed say left a file";
    r = run("say --voice espeak.en-us --text 'Hello in Ogg.' --format opus -o hello.opus");
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string first = slurp(dir_.file("hello.opus"));
    EXPECT_EQ(first.substr(0, 4), "OggS");
    // A second process draws its own Ogg serial number (bytes 14..17 of the first
    // page): the same one in every process made joined files a corrupt chain.
    ASSERT_EQ(
        run("say --voice espeak.en-us --text 'Hello in Ogg.' --format opus -o again.opus").status,
        0);
    const std::string second = slurp(dir_.file("again.opus"));
    ASSERT_GT(second.size(), 18U);
    EXPECT_NE(first.substr(14, 4), second.substr(14, 4)) << "two processes share a serial";
    r = run("voices");
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("espeak.en-us\n"), std::string::npos);
}

TEST_F(Cli, RetryAndPurgeReportWhatTheyDid) {
    ASSERT_EQ(run("migrate").status, 0);
    Result r = run("retry");
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "moved 0\n");
    r = run("purge --state COMPLETED,CANCELLED --older-than 7d");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "purged 0\n");
}

}  // namespace
}  // namespace voxq

namespace voxq {
namespace {

TEST_F(Cli, HostileValuesAreUsageErrorsAndTerminalsSeeNoEscapes) {
    // Ports outside 1..65535 are usage errors, never wrapped.
    EXPECT_EQ(run("serve --no-worker --port 99999").status, 2);
    EXPECT_EQ(run("sink --port 65537 --dir " + dir_.file("sink")).status, 2);
    // A folder is not a JSON Lines file.
    Result r = run("enqueue --file " + dir_.path().string());
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("is a folder"), std::string::npos) << r.err;
    // A far-future schedule is refused, not stored as a time in the past.
    r = run("enqueue --text x --voice espeak.en --url http://e.com/ --schedule-at 10000000000000");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("year 9999"), std::string::npos) << r.err;
    // Escape sequences in stored text never reach the terminal raw.
    r =
        run("enqueue --text \"$(printf '\\033[2J\\033]0;owned\\007')\" --voice espeak.en "
            "--url http://e.com/ --dedup-key \"$(printf '\\033[31mred')\"");
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string id = r.out.substr(0, r.out.find('\n'));
    r = run("show " + id);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\\x1B"), std::string::npos) << r.out;
    // A password in the database URL is never printed.
    r = run("--database-url 'postgresq://voxq:S3cretPW@db/x' stats");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err.find("S3cretPW"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace voxq

namespace voxq {
namespace {

TEST_F(Cli, EnqueueFileChecksIdsBeforeStoringAndBoundsLines) {
    auto with_id = [](const std::string& id) {
        return R"({"id":")" + id +
               R"(","items":[{"request":{"text":"t","voice_id":"espeak.en"},"response_url":"http://e.com/"}]})" +
               "\n";
    };
    // The same id on lines 3 and 201: refused before anything is stored.
    std::string lines;
    for (int i = 1; i <= 250; ++i)
        lines += with_id(i == 201 ? "job-3" : "job-" + std::to_string(i));
    Result r = run("enqueue --file " + write_file("dup.jsonl", lines), "QUEUE_BATCH_SIZE=100");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "voxq: line 201: id job-3 is also on line 3\n");
    EXPECT_EQ(nlohmann::json::parse(run("stats --json").out)["total"], 0);
    // An id already stored: refused before anything is stored.
    ASSERT_EQ(run("enqueue --file " + write_file("one.jsonl", with_id("job-7"))).status, 0);
    lines.clear();
    for (int i = 1; i <= 250; ++i) lines += with_id("new-" + std::to_string(i));
    lines += with_id("job-7");
    r = run("enqueue --file " + write_file("existing.jsonl", lines), "QUEUE_BATCH_SIZE=100");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("line 251: task job-7 already exists"), std::string::npos) << r.err;
    EXPECT_EQ(nlohmann::json::parse(run("stats --json").out)["total"], 1);
    // A line beyond 16 MiB is refused as it passes the bound, not read whole.
    const std::string huge = write_file("huge.jsonl", std::string(20U << 20U, 'x'));
    r = run("enqueue --file " + huge);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "voxq: line 1: longer than 16 MiB\n");
    // Ids are printed per committed chunk, in file order.
    r = run(
        "enqueue --file " + write_file("ok.jsonl", lines.substr(0, lines.rfind("{\"id\":\"job-7"))),
        "QUEUE_BATCH_SIZE=100");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.substr(0, 6), "new-1\n");
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 250);
}

}  // namespace
}  // namespace voxq
