// voxq config: every setting, its effective value and where it came from
// (default or environment), secrets redacted; every setting checked, each bad
// one named. `--env-file` writes the same as a commented environment file (the
// Debian package's /etc/voxq/voxq.env is made by it).
#include "voxq/config.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "util/env.hpp"
#include "util/text.hpp"
#include "voxq/errors.hpp"
#include "voxq/log.hpp"
#include "voxq/server.hpp"
#include "voxq/speech.hpp"
#include "voxq/webhook.hpp"
#include "voxq/worker.hpp"

namespace voxq::cli {

namespace {

enum class Shown { Plain, Secret, Url };

struct Setting {
    std::string variable;
    std::string fallback;  // the default as text ("" = none)
    const char* meaning;
    Shown shown = Shown::Plain;
};

std::string text(double value) {
    return format_number(value);
}
std::string text(std::size_t value) {
    return std::to_string(value);
}
std::string text(std::int64_t value) {
    return std::to_string(value);
}

std::string queue_default(std::string_view variable) {
    const QueueConfig defaults;
    for (const ConfigField& f : config_fields()) {
        if (f.variable != variable) continue;
        return std::visit(
            [&](auto member) -> std::string {
                const auto& value = defaults.*member;
                using T = std::decay_t<decltype(value)>;
                if constexpr (std::is_same_v<T, std::string>) {
                    return value;
                } else if constexpr (std::is_same_v<T, SqliteSynchronous>) {
                    return std::string(to_string(value));
                } else {
                    return text(value);
                }
            },
            f.member);
    }
    return {};
}

// Every setting voxq reads, in the order an operator thinks of them. Defaults
// come from the config structs themselves, so they cannot drift from what the
// readers use (a test checks that each of config_fields() is here).
const std::vector<Setting>& settings() {
    static const std::vector<Setting> table = [] {
        const ServerConfig server;
        const WebhookConfig webhook;
        const StorageConfig storage;
        const WorkerOptions worker;
        const LogConfig log;
        return std::vector<Setting>{
            {"QUEUE_DATABASE_URL", queue_default("QUEUE_DATABASE_URL"),
             "sqlite:///path.db, or postgresql://user@host/db", Shown::Url},
            {"QUEUE_MAX_ATTEMPTS", queue_default("QUEUE_MAX_ATTEMPTS"),
             "attempts before a task is discarded"},
            {"QUEUE_VISIBILITY_TIMEOUT", queue_default("QUEUE_VISIBILITY_TIMEOUT"),
             "seconds a claimed task's lease lasts without a heartbeat"},
            {"QUEUE_RETRY_BACKOFF_MULTIPLIER", queue_default("QUEUE_RETRY_BACKOFF_MULTIPLIER"),
             "each retry waits this many times longer"},
            {"QUEUE_RETRY_BASE_DELAY", queue_default("QUEUE_RETRY_BASE_DELAY"),
             "seconds before the first retry"},
            {"QUEUE_MAX_RETRY_DELAY", queue_default("QUEUE_MAX_RETRY_DELAY"),
             "longest wait between attempts (caps Retry-After too)"},
            {"QUEUE_BATCH_SIZE", queue_default("QUEUE_BATCH_SIZE"),
             "default size of dequeue and retry"},
            {"VOXQ_MAX_TEXT_LENGTH", queue_default("VOXQ_MAX_TEXT_LENGTH"),
             "bytes of text per item"},
            {"VOXQ_SQLITE_SYNCHRONOUS", queue_default("VOXQ_SQLITE_SYNCHRONOUS"),
             "FULL: a returned write survives power loss; NORMAL: faster, survives a crash"},
            {"VOXQ_SQLITE_BUSY_TIMEOUT_MS", queue_default("VOXQ_SQLITE_BUSY_TIMEOUT_MS"),
             "how long a SQLite write waits for the lock"},
            {"VOXQ_ERROR_HISTORY", queue_default("VOXQ_ERROR_HISTORY"), "errors kept per task"},
            {"VOXQ_MAX_STALLS", queue_default("VOXQ_MAX_STALLS"),
             "expired leases before a task is discarded as poison"},
            {"VOXQ_PG_SCHEMA", queue_default("VOXQ_PG_SCHEMA"),
             "PostgreSQL schema of voxq's tables"},
            {"VOXQ_PG_POOL_SIZE", queue_default("VOXQ_PG_POOL_SIZE"),
             "PostgreSQL connections per process"},
            {"VOXQ_PG_QUERY_TIMEOUT", queue_default("VOXQ_PG_QUERY_TIMEOUT"),
             "seconds a PostgreSQL statement may go unanswered before the connection is given up"},
            {"VOXQ_API_TOKEN", "", "bearer token the HTTP API requires (16+ characters)",
             Shown::Secret},
            {"VOXQ_API_MAX_BODY_BYTES", text(server.max_body_bytes), "largest request body"},
            {"VOXQ_API_MAX_TASKS", text(server.max_tasks_per_request), "tasks per request"},
            {"VOXQ_API_MAX_CONNECTIONS", text(server.max_connections), "open connections"},
            {"VOXQ_API_MAX_CONNECTIONS_PER_CLIENT", text(server.max_connections_per_client),
             "open connections per client address"},
            {"VOXQ_API_HEADER_TIMEOUT", text(server.header_timeout_seconds),
             "seconds for a request line and headers"},
            {"VOXQ_API_THREADS", text(server.threads), "HTTP server threads"},
            {"VOXQ_WEBHOOK_SECRET", "",
             "whsec_... secrets deliveries are signed with (space-separated)", Shown::Secret},
            {"VOXQ_WEBHOOK_PAYLOAD", webhook.payload == WebhookPayload::Json ? "json" : "raw",
             "json (Standard Webhooks event) or raw (the audio bytes)"},
            {"VOXQ_WEBHOOK_ALLOW_NETS", "", "CIDRs webhooks may reach although internal"},
            {"VOXQ_WEBHOOK_CONNECT_TIMEOUT", text(webhook.connect_timeout),
             "seconds to connect to a receiver"},
            {"VOXQ_WEBHOOK_TIMEOUT", text(webhook.total_timeout), "seconds for a whole delivery"},
            {"VOXQ_TASK_TIMEOUT", text(worker.task_timeout),
             "seconds one attempt may take (0 = no deadline)"},
            {"VOXQ_ENGINE_ESPEAK_CONCURRENCY", "", "espeak helper processes (default: the cores)"},
            {"VOXQ_ENGINE_ESPEAK_RPM", "0",
             "espeak calls per minute, shared by every worker on the database (0 = no limit)"},
            {"VOXQ_ENGINE_ESPEAK_CPM", "0",
             "espeak characters per minute, shared likewise (0 = no limit)"},
            {"VOXQ_ESPEAK_HELPER", "", "path of voxq-espeak (default: found beside voxq)"},
            {"VOXQ_SPEECH_CACHE_DIR", "",
             "a folder where identical requests' speech is kept, shared by this machine's workers"},
            {"VOXQ_SPEECH_CACHE_MAX_BYTES", std::to_string(SpeechCache::kDefaultMaxBytes),
             "the speech cache's bound; the least recently used go first"},
            {"VOXQ_STORAGE_URL", "",
             "s3://BUCKET[/PREFIX]: deliveries carry a link, not the audio"},
            {"VOXQ_STORAGE_URL_TTL", text(storage.url_ttl),
             "seconds a presigned audio link stays valid"},
            {"VOXQ_S3_ENDPOINT", "", "http(s)://host[:port] of an S3-compatible store"},
            {"VOXQ_S3_REGION", storage.region, "the store's region"},
            {"AWS_ACCESS_KEY_ID", "", "object storage credentials"},
            {"AWS_SECRET_ACCESS_KEY", "", "object storage credentials", Shown::Secret},
            {"AWS_SESSION_TOKEN", "", "object storage credentials (temporary)", Shown::Secret},
            {"VOXQ_SINK_SECRET", "", "whsec_... secrets voxq sink verifies with", Shown::Secret},
            {"VOXQ_LOG_LEVEL", log_level_name(log.level), "debug, info, warning or error"},
            {"VOXQ_LOG_FORMAT", log.format == LogFormat::Json ? "json" : "text",
             "text, or json (one object a line, for journald)"},
        };
    }();
    return table;
}

// The settings of engines configured by name (VOXQ_ENGINE_KOKORO_URL, ...).
Setting engine_setting(const std::string& variable) {
    const bool secret = variable.ends_with("_API_KEY");
    return {variable, "", "an engine configured by name", secret ? Shown::Secret : Shown::Plain};
}

std::string shown(const Setting& s, const std::string& value) {
    if (value.empty()) return value;
    switch (s.shown) {
        case Shown::Secret:
            return "***";
        case Shown::Url:
            return redact_credentials(value);
        case Shown::Plain:
            break;
    }
    return escape_for_terminal(value);
}

struct Row {
    Setting setting;
    std::string value;  // shown (redacted)
    bool from_environment = false;
    std::string raw;  // as set, for --env-file (never written for Shown::Secret)
};

std::vector<Row> rows(const env::Reader& vars) {
    std::vector<Row> out;
    std::set<std::string> known;
    for (const Setting& s : settings()) {
        known.insert(s.variable);
        const auto set = vars.text(s.variable);
        const std::string value = set ? *set : s.fallback;
        out.push_back({s, shown(s, value), set.has_value(), value});
    }
    for (const auto& [variable, value] : vars.with_prefix("VOXQ_ENGINE_")) {
        if (known.count(variable) != 0) continue;
        Setting s = engine_setting(variable);
        out.push_back({s, shown(s, value), true, value});
    }
    return out;
}

// Every VOXQ_/QUEUE_ variable set that voxq does not read: most likely a typo.
std::vector<std::string> unknown_variables(const env::Reader& vars) {
    std::set<std::string> known;
    for (const Setting& s : settings()) known.insert(s.variable);
    std::vector<std::string> out;
    for (const char* prefix : {"VOXQ_", "QUEUE_"}) {
        for (const auto& [variable, value] : vars.with_prefix(prefix)) {
            if (known.count(variable) == 0 && !variable.starts_with("VOXQ_ENGINE_") &&
                !variable.starts_with("VOXQ_TEST_")) {
                out.push_back(variable);
            }
        }
    }
    return out;
}

// Runs every reader of settings; the problems, one line each.
std::vector<std::string> problems() {
    std::vector<std::string> out;
    const std::vector<std::function<void()>> loaders = {
        [] { (void)QueueConfig::from_env(); },   [] { ServerConfig::from_env().validate(); },
        [] { (void)WebhookConfig::from_env(); }, [] { (void)WorkerOptions::from_env(); },
        [] { (void)StorageConfig::from_env(); }, [] { (void)LogConfig::from_env(); },
        [] { (void)SpeechEngines::from_env(); },
    };
    for (const auto& load : loaders) {
        try {
            load();
        } catch (const std::exception& e) {
            // Readers share some variables: each problem once.
            std::string problem = one_line(redact_credentials(e.what()), 500);
            if (std::find(out.begin(), out.end(), problem) == out.end()) {
                out.push_back(std::move(problem));
            }
        }
    }
    return out;
}

int print_table(const std::vector<Row>& all, const std::vector<std::string>& unknown,
                const std::vector<std::string>& bad) {
    std::size_t width = 0;
    for (const Row& r : all) width = std::max(width, r.setting.variable.size());
    for (const Row& r : all) {
        std::printf("%-*s  %-12s %s\n", static_cast<int>(width), r.setting.variable.c_str(),
                    r.from_environment ? "environment" : "default",
                    r.value.empty() ? "(unset)" : r.value.c_str());
    }
    for (const std::string& v : unknown) {
        std::printf("%-*s  %-12s (not a voxq setting: a typo?)\n", static_cast<int>(width),
                    v.c_str(), "environment");
    }
    for (const std::string& problem : bad)
        std::fprintf(stderr, "voxq config: %s\n", problem.c_str());
    return bad.empty() ? 0 : 1;
}

int print_json(const std::vector<Row>& all, const std::vector<std::string>& unknown,
               const std::vector<std::string>& bad) {
    nlohmann::json settings_json = nlohmann::json::array();
    for (const Row& r : all) {
        settings_json.push_back({{"variable", r.setting.variable},
                                 {"value", r.value},
                                 {"source", r.from_environment ? "environment" : "default"},
                                 {"meaning", r.setting.meaning}});
    }
    std::printf("%s\n",
                nlohmann::json{{"settings", settings_json}, {"unknown", unknown}, {"problems", bad}}
                    .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                    .c_str());
    return bad.empty() ? 0 : 1;
}

// A commented environment file: settings from the environment written out as
// given (a database URL with its password: the file is the operator's), the
// others commented with their defaults. Tokens and secret keys are never written.
int print_env_file(const std::vector<Row>& all, const std::vector<std::string>& bad) {
    std::printf(
        "# voxq settings, read by voxq serve and voxq worker (systemd EnvironmentFile=).\n"
        "# A line commented out shows the default. `voxq config` prints what is in effect.\n");
    for (const Row& r : all) {
        std::printf("\n# %s\n", r.setting.meaning);
        const bool one_line_value = std::none_of(r.raw.begin(), r.raw.end(), [](char c) {
            return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        });
        if (r.from_environment && r.setting.shown != Shown::Secret && one_line_value) {
            std::printf("%s=%s\n", r.setting.variable.c_str(), r.raw.c_str());
        } else {
            std::printf("#%s=%s\n", r.setting.variable.c_str(),
                        r.setting.shown == Shown::Secret ? "" : r.value.c_str());
        }
    }
    for (const std::string& problem : bad)
        std::fprintf(stderr, "voxq config: %s\n", problem.c_str());
    return bad.empty() ? 0 : 1;
}

}  // namespace

void add_config(const CommandContext& ctx) {
    struct Options {
        bool json = false;
        bool env_file = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand(
        "config",
        "every setting, its value and where it came from (secrets redacted); checks them");
    cmd->add_flag("--json", o->json, "as JSON");
    cmd->add_flag("--env-file", o->env_file,
                  "as a commented environment file (for /etc/voxq/voxq.env)");
    ctx.on_run(cmd, [o] {
        const env::Reader vars;
        const std::vector<Row> all = rows(vars);
        const std::vector<std::string> bad = problems();
        if (o->env_file) return print_env_file(all, bad);
        const std::vector<std::string> unknown = unknown_variables(vars);
        return o->json ? print_json(all, unknown, bad) : print_table(all, unknown, bad);
    });
}

}  // namespace voxq::cli
