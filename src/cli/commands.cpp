#include "cli/commands.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "util/text.hpp"
#include "voxq/audio_format.hpp"
#include "voxq/json.hpp"
#include "voxq/queue.hpp"
#include "voxq/server.hpp"
#include "voxq/sink.hpp"
#include "voxq/speech.hpp"
#include "voxq/worker.hpp"

namespace voxq::cli {

namespace {

struct Globals {
    std::string database_url;
};

// Configuration from the environment, with --database-url taking precedence.
QueueConfig load_config(const Globals& g) {
    QueueConfig config = QueueConfig::from_env();
    if (!g.database_url.empty()) {
        config.database_url = g.database_url;
        config.validate();
    }
    return config;
}

// An opened queue for one command.
struct OpenQueue {
    WorkerQueue queue;
    explicit OpenQueue(const Globals& g) : queue(load_config(g)) { queue.initialize(); }
};

std::string iso_time(double unix_seconds) {
    if (unix_seconds <= 0) return "-";
    const auto secs = static_cast<std::time_t>(std::floor(unix_seconds));
    const auto ms = static_cast<int>((unix_seconds - static_cast<double>(secs)) * 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
}

// "30s", "12h", "7d", "90m", "45" (seconds).
double parse_duration(const std::string& text) {
    if (text.empty()) throw ValidationError("duration: empty");
    char unit = text.back();
    std::string number = text;
    double scale = 1;
    if (std::isalpha(static_cast<unsigned char>(unit))) {
        number.pop_back();
        switch (unit) {
            case 's':
                scale = 1;
                break;
            case 'm':
                scale = 60;
                break;
            case 'h':
                scale = 3600;
                break;
            case 'd':
                scale = 86400;
                break;
            case 'w':
                scale = 7 * 86400;
                break;
            default:
                throw ValidationError("duration '" + text + "': unit must be s, m, h, d or w");
        }
    }
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(number, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != number.size() || number.empty() || !std::isfinite(value) || value < 0) {
        throw ValidationError("duration '" + text + "' is not like 30s, 12h or 7d");
    }
    return value * scale;
}

// For a terminal: one line, control characters (ESC included) escaped, valid
// UTF-8, at most `max` bytes.
std::string one_line(std::string s, std::size_t max) {
    for (char& c : s) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return truncate_utf8(escape_for_terminal(s), max);
}

void print_task_table(const std::vector<Task>& tasks) {
    std::printf("%-26s  %-10s  %-10s  %4s  %7s  %-24s  %s\n", "ID", "STATE", "QUEUE", "PRI",
                "ATTEMPT", "SCHEDULE_AT", "LAST_ERROR");
    for (const Task& t : tasks) {
        std::printf("%-26s  %-10s  %-10s  %4lld  %7lld  %-24s  %s\n", t.id.c_str(),
                    std::string(to_string(t.state)).c_str(), one_line(t.queue, 10).c_str(),
                    static_cast<long long>(t.priority), static_cast<long long>(t.attempt_count),
                    iso_time(t.schedule_at).c_str(), one_line(t.last_error, 60).c_str());
    }
}

// Replaces the leading "task <i>: " of a validation message with "line <n>: ".
std::string at_line(const std::string& message, std::size_t line) {
    std::string rest = message;
    if (rest.rfind("task ", 0) == 0) {
        if (auto colon = rest.find(": "); colon != std::string::npos) rest = rest.substr(colon + 2);
    }
    return "line " + std::to_string(line) + ": " + rest;
}

class Progress {
  public:
    explicit Progress(std::size_t total) : total_(total), enabled_(isatty(STDERR_FILENO) != 0) {}
    void update(std::size_t done) {
        if (!enabled_ || total_ == 0) return;
        const int width = 40;
        const auto filled = static_cast<int>(width * done / total_);
        std::fprintf(
            stderr, "\r[%s%s] %zu/%zu", std::string(static_cast<std::size_t>(filled), '#').c_str(),
            std::string(static_cast<std::size_t>(width - filled), ' ').c_str(), done, total_);
        if (done == total_) std::fprintf(stderr, "\n");
        std::fflush(stderr);
    }

  private:
    std::size_t total_;
    bool enabled_;
};

struct EnqueueOptions {
    std::string text, voice, url, schedule_at, queue = "default", dedup_key, format = "wav", file;
    std::int64_t priority = 0;
    double speed = 1.0;
    bool json = false;
};

// One line of at most `max` bytes (without its '\n'); false at the end. A longer
// line is refused as soon as it passes the bound, never read whole.
bool read_bounded_line(std::istream& in, std::string& line, std::size_t max, std::size_t number) {
    line.clear();
    std::streambuf* buf = in.rdbuf();
    for (;;) {
        const int c = buf->sbumpc();
        if (c == std::char_traits<char>::eof()) return !line.empty();
        if (c == '\n') return true;
        line += static_cast<char>(c);
        if (line.size() > max)
            throw ValidationError("line " + std::to_string(number) + ": longer than " +
                                  std::to_string(max >> 20U) + " MiB");
    }
}

// Each task of a JSON Lines stream, parsed and validated, with its line number.
void for_each_line_task(std::istream& in, OpenQueue& q,
                        const std::function<void(std::size_t, Task&&)>& take) {
    constexpr std::size_t kMaxLineBytes = std::size_t{16} << 20;
    std::string line;
    std::size_t number = 0;
    std::size_t index = 0;
    while (read_bounded_line(in, line, kMaxLineBytes, number + 1)) {
        ++number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        Task t;
        try {
            t = task_from_json(line, index);
            q.queue.validate_task(t, index);
        } catch (const ValidationError& e) {
            throw ValidationError(at_line(e.what(), number));
        }
        ++index;
        take(number, std::move(t));
    }
}

int cmd_enqueue(const Globals& g, const EnqueueOptions& o) {
    OpenQueue q(g);
    const auto chunk = static_cast<std::size_t>(q.queue.config().batch_size);
    std::vector<std::string> ids;
    std::size_t stored_through = 0;  // the last line of the last committed chunk
    const auto store = [&](std::vector<Task>& part, std::size_t last_line) {
        q.queue.enqueue(part);
        stored_through = last_line;
        for (const Task& t : part) {
            ids.push_back(t.id);
            // Printed per committed chunk: a run cut short shows what it stored.
            if (!o.json) std::cout << t.id << "\n";
        }
        std::cout.flush();
    };
    if (!o.file.empty()) {
        std::ifstream file;
        const bool from_stdin = o.file == "-";
        if (!from_stdin) {
            if (std::filesystem::is_directory(o.file))
                throw ValidationError(o.file + " is a folder, not a JSON Lines file");
            file.open(o.file, std::ios::binary);
            if (!file) throw QueueError("cannot open " + o.file);
        }
        // Pass 1: every line is parsed and checked, ids included (twice in the
        // file, or already stored), before anything is stored. A file is read
        // again for pass 2; standard input is kept.
        std::map<std::string, std::size_t> seen;  // explicit id -> line
        std::vector<std::pair<std::size_t, Task>> kept;
        std::size_t total = 0;
        for_each_line_task(from_stdin ? std::cin : file, q, [&](std::size_t line, Task&& t) {
            ++total;
            if (!t.id.empty()) {
                auto [it, fresh] = seen.emplace(t.id, line);
                if (!fresh)
                    throw ValidationError("line " + std::to_string(line) + ": id " + t.id +
                                          " is also on line " + std::to_string(it->second));
                try {
                    (void)q.queue.get_task(t.id);
                    throw QueueError("line " + std::to_string(line) + ": task " + t.id +
                                     " already exists; nothing was stored");
                } catch (const TaskNotFoundError&) {
                }
            }
            if (from_stdin) kept.emplace_back(line, std::move(t));
        });
        Progress progress(total);
        std::vector<Task> part;
        std::size_t last_line = 0;
        const auto add = [&](std::size_t line, Task&& t) {
            part.push_back(std::move(t));
            last_line = line;
            if (part.size() == chunk) {
                store(part, last_line);
                part.clear();
                progress.update(ids.size());
            }
        };
        try {
            if (from_stdin) {
                for (auto& [line, t] : kept) add(line, std::move(t));
            } else {
                file.clear();
                file.seekg(0);
                for_each_line_task(file, q, add);
            }
            if (!part.empty()) store(part, last_line);
            progress.update(ids.size());
        } catch (const QueueError& e) {
            // Say exactly what is stored, so the rest can be sent again alone.
            const std::string stored =
                stored_through == 0
                    ? std::string("nothing was stored")
                    : "lines 1-" + std::to_string(stored_through) +
                          " are stored (their ids are printed above); send the lines after " +
                          std::to_string(stored_through) + " again";
            throw QueueError(std::string(e.what()) + "; " + stored);
        }
    } else {
        if (o.text.empty() || o.voice.empty() || o.url.empty()) {
            throw CLI::ValidationError("enqueue", "needs --text, --voice and --url, or --file");
        }
        Task t;
        t.items.push_back(TaskItem{{o.text, o.voice, o.speed, o.format}, o.url});
        t.queue = o.queue;
        t.priority = o.priority;
        t.dedup_key = o.dedup_key;
        if (!o.schedule_at.empty()) {
            const bool relative = o.schedule_at.front() == '+';
            const double v = parse_duration(relative ? o.schedule_at.substr(1) : o.schedule_at);
            t.schedule_at = relative ? q.queue.clock().now_seconds() + v : v;
        }
        std::vector<Task> one{std::move(t)};
        store(one, 1);
    }
    if (o.json) std::cout << nlohmann::json(ids).dump() << "\n";
    return 0;
}

int cmd_stats(const Globals& g, const std::string& queue, bool json) {
    OpenQueue q(g);
    const auto stats = q.queue.get_queue_stats(queue);
    if (json) {
        std::cout << stats_to_json(stats) << "\n";
        return 0;
    }
    for (const char* key :
         {"pending", "processing", "retryable", "completed", "cancelled", "discarded", "total"}) {
        std::printf("%-11s %12lld\n", key, static_cast<long long>(stats.at(key)));
    }
    return 0;
}

// Blocks SIGINT and SIGTERM in this thread, and so in every thread started
// after it: a command takes them with sigwait instead.
sigset_t block_stop_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return signals;
}

// Runs a server on this thread until SIGINT or SIGTERM (taken by a thread of
// its own, which calls `stop`).
void serve_until_signalled(const sigset_t& signals, const std::function<void()>& run,
                           const std::function<void()>& stop) {
    std::thread waiter([&] {
        int sig = 0;
        sigwait(&signals, &sig);
        stop();
    });
    run();
    kill(getpid(), SIGTERM);  // wake the waiter if the server stopped on its own
    waiter.join();
}

// Webhook delivery as VOXQ_WEBHOOK_* configure it.
std::shared_ptr<WebhookSender> webhook_sender() {
    return std::make_shared<WebhookSender>(WebhookConfig::from_env());
}

int run_sink(const SinkConfig& config) {
    const sigset_t signals = block_stop_signals();
    WebhookSink sink(config);
    std::fprintf(stderr, "voxq sink: listening on http://%s:%d, saving to %s (%s)\n",
                 config.host.c_str(), sink.port(), config.dir.c_str(),
                 config.secrets.empty() ? "unsigned deliveries accepted" : "signatures required");
    serve_until_signalled(
        signals, [&] { sink.run(); }, [&] { sink.stop(); });
    std::fprintf(stderr, "voxq sink: saved %zu deliveries\n", sink.received());
    return 0;
}

}  // namespace

int run(int argc, char** argv) {
    CLI::App app{"voxq: a durable queue for text-to-speech work"};
    app.require_subcommand(1);
    Globals g;
    app.add_option(
        "--database-url", g.database_url,
        "database URL (else QUEUE_DATABASE_URL, else sqlite+aiosqlite:///data/queue.db)");

    int status = 0;
    std::function<int()> action;

    EnqueueOptions eo;
    auto* enqueue =
        app.add_subcommand("enqueue", "add tasks (flags for one, --file for JSON Lines)");
    enqueue->add_option("--text", eo.text, "text to speak");
    enqueue->add_option("--voice", eo.voice, "voice id, engine.voice (e.g. espeak.en-us)");
    enqueue->add_option("--url", eo.url, "webhook the audio is POSTed to");
    enqueue->add_option("--schedule-at", eo.schedule_at,
                        "Unix time, or +SECONDS / +DURATION from now");
    enqueue->add_option("--priority", eo.priority, "higher runs first (default 0)");
    enqueue->add_option("--queue", eo.queue, "queue name (default 'default')");
    enqueue->add_option("--dedup-key", eo.dedup_key, "idempotency key within the queue");
    enqueue->add_option("--format", eo.format, audio_format_names());
    enqueue->add_option("--speed", eo.speed, "0.25 to 4.0");
    enqueue->add_option("--file,-f", eo.file, "JSON Lines file of tasks, '-' for stdin");
    enqueue->add_option("source", eo.file, "'-': read JSON Lines from stdin")
        ->check(CLI::IsMember({"-"}));
    enqueue->add_flag("--json", eo.json, "print the ids as a JSON array");
    enqueue->callback([&] { action = [&] { return cmd_enqueue(g, eo); }; });

    std::string stats_queue;
    bool stats_json = false;
    auto* stats = app.add_subcommand("stats", "task counts per state");
    stats->add_option("--queue", stats_queue, "only this queue");
    stats->add_flag("--json", stats_json, "print JSON");
    stats->callback([&] { action = [&] { return cmd_stats(g, stats_queue, stats_json); }; });

    std::string list_state, list_queue, list_cursor;
    std::int64_t list_limit = 50;
    bool list_json = false;
    auto* list = app.add_subcommand("list", "list tasks, newest first");
    list->add_option("--state", list_state, "only this state");
    list->add_option("--queue", list_queue, "only this queue");
    list->add_option("--limit", list_limit, "page size (default 50)");
    list->add_option("--cursor", list_cursor, "next_cursor of the previous page");
    list->add_flag("--json", list_json, "print {\"tasks\": [...], \"next_cursor\"}");
    list->callback([&] {
        action = [&] {
            TaskFilter filter;
            if (!list_state.empty()) {
                filter.state = task_state_from(list_state, "--state");
            }
            filter.queue = list_queue;
            OpenQueue q(g);
            const TaskPage page = q.queue.list_tasks(filter, list_limit, list_cursor);
            if (list_json) {
                std::cout << task_page_to_json(page) << "\n";
            } else {
                print_task_table(page.tasks);
                if (!page.next_cursor.empty())
                    std::printf("next page: --cursor %s\n", page.next_cursor.c_str());
            }
            return 0;
        };
    });

    std::string show_id;
    bool show_json = false;
    auto* show = app.add_subcommand("show", "one task, with its error history");
    show->add_option("id", show_id, "task id")->required();
    show->add_flag("--json", show_json, "print JSON");
    show->callback([&] {
        action = [&] {
            OpenQueue q(g);
            const Task t = q.queue.get_task(show_id);
            if (show_json) {
                std::cout << task_to_json(t, true) << "\n";
                return 0;
            }
            std::printf(
                "id           %s\nstate        %s\nqueue        %s\npriority     %lld\n"
                "attempts     %lld (max %s)\nschedule_at  %s\ncreated_at   %s\n"
                "updated_at   %s\nlast_error   %s\n",
                t.id.c_str(), std::string(to_string(t.state)).c_str(), t.queue.c_str(),
                static_cast<long long>(t.priority), static_cast<long long>(t.attempt_count),
                t.max_attempts > 0 ? std::to_string(t.max_attempts).c_str() : "default",
                iso_time(t.schedule_at).c_str(), iso_time(t.created_at).c_str(),
                iso_time(t.updated_at).c_str(), one_line(t.last_error, 4096).c_str());
            if (!t.dedup_key.empty())
                std::printf("dedup_key    %s\n", one_line(t.dedup_key, 1024).c_str());
            for (std::size_t i = 0; i < t.items.size(); ++i) {
                const TaskItem& it = t.items[i];
                std::printf("item %zu       %s %s x%.2f -> %s: %s\n", i,
                            it.request.voice_id.c_str(), it.request.format.c_str(),
                            it.request.speed, one_line(it.response_url, 2048).c_str(),
                            one_line(it.request.text, 60).c_str());
            }
            for (const TaskError& e : t.error_history) {
                std::printf("error        attempt %lld at %s: %s\n",
                            static_cast<long long>(e.attempt), iso_time(e.at).c_str(),
                            one_line(e.message, 4096).c_str());
            }
            return 0;
        };
    });

    // cancel / resume / discard: one id, one transition.
    std::string transition_id;
    auto add_transition = [&](const char* name, const char* help,
                              void (*apply)(WorkerQueue&, const std::string&)) {
        auto* cmd = app.add_subcommand(name, help);
        cmd->add_option("id", transition_id, "task id")->required();
        cmd->callback([&, apply, name] {
            action = [&, apply, name] {
                OpenQueue q(g);
                apply(q.queue, transition_id);
                std::printf("%s: %s\n", name, transition_id.c_str());
                return 0;
            };
        });
    };
    add_transition("cancel", "PENDING -> CANCELLED",
                   [](WorkerQueue& q, const std::string& id) { q.mark_as_cancelled(id); });
    add_transition("resume", "DISCARDED -> PENDING, with fresh attempts",
                   [](WorkerQueue& q, const std::string& id) { q.mark_as_resume(id); });
    add_transition("discard", "PROCESSING -> DISCARDED", [](WorkerQueue& q, const std::string& id) {
        q.mark_as_discarded(id, std::nullopt, std::string("discarded by operator"));
    });

    std::int64_t retry_size = 0;
    auto* retry = app.add_subcommand("retry", "run one retry sweep and print what moved");
    retry->add_option("--size", retry_size, "at most this many tasks (default QUEUE_BATCH_SIZE)");
    retry->callback([&] {
        action = [&] {
            OpenQueue q(g);
            const auto moved =
                q.queue.retry(retry_size > 0 ? std::optional(retry_size) : std::nullopt);
            for (const Task& t : moved) {
                std::printf("%s -> %s at %s\n", t.id.c_str(),
                            std::string(to_string(t.state)).c_str(),
                            iso_time(t.schedule_at).c_str());
            }
            std::printf("moved %zu\n", moved.size());
            return 0;
        };
    });

    std::string purge_states, purge_older;
    auto* purge = app.add_subcommand("purge", "delete finished tasks older than a duration");
    purge->add_option("--state", purge_states, "COMPLETED,CANCELLED,DISCARDED (comma-separated)")
        ->required();
    purge->add_option("--older-than", purge_older, "e.g. 30s, 12h, 7d")->required();
    purge->callback([&] {
        action = [&] {
            std::vector<TaskState> states;
            std::stringstream ss(purge_states);
            for (std::string name; std::getline(ss, name, ',');) {
                states.push_back(task_state_from(name, "--state"));
            }
            const double older = parse_duration(purge_older);
            OpenQueue q(g);
            std::printf("purged %lld\n", static_cast<long long>(q.queue.purge(states, older)));
            return 0;
        };
    });

    std::string say_voice, say_text, say_out, say_format = "wav";
    double say_speed = 1.0;
    auto* say = app.add_subcommand("say", "synthesize locally into a file");
    say->add_option("--voice", say_voice, "engine.voice, e.g. espeak.en-us")->required();
    say->add_option("--text", say_text, "what to say")->required();
    say->add_option("-o,--output", say_out, "file to write")->required();
    say->add_option("--format", say_format, audio_format_names());
    say->add_option("--speed", say_speed, "0.25 to 4.0");
    say->callback([&] {
        action = [&] {
            Task check;
            check.items.push_back(
                TaskItem{{say_text, say_voice, say_speed, say_format}, "http://localhost/"});
            WorkerQueue(QueueConfig{}).validate_task(check);
            const auto engines = SpeechEngines::from_env();
            const Audio audio = engines->synthesize(check.items[0].request);
            const EncodedAudio encoded =
                encode_audio(audio, say_format);  // before creating the file
            std::ofstream out(say_out, std::ios::binary);
            out << encoded.bytes;
            if (!out) throw QueueError("cannot write " + say_out);
            std::printf("%s: %.2f s at %d Hz\n", say_out.c_str(), audio.seconds(),
                        audio.sample_rate);
            return 0;
        };
    });

    bool voices_json = false;
    std::string voices_engine = "espeak";
    auto* voices = app.add_subcommand("voices", "list the voices of an engine");
    voices->add_option("--engine", voices_engine,
                       "engine name: espeak, or one set by VOXQ_ENGINE_<NAME>_URL");
    voices->add_flag("--json", voices_json, "print JSON");
    voices->callback([&] {
        action = [&] {
            const auto engines = SpeechEngines::from_env();
            const auto engine = engines->engine(voices_engine);
            if (!engine) {
                throw ValidationError("--engine: " + SpeechEngines::not_configured(voices_engine));
            }
            const auto names = engine->voices();
            if (voices_json) {
                std::cout << nlohmann::json(names).dump() << "\n";
            } else {
                for (const std::string& n : names) std::cout << voices_engine << "." << n << "\n";
            }
            return 0;
        };
    });

    WorkerOptions worker_options;
    auto* worker =
        app.add_subcommand("worker", "claim, synthesize and deliver tasks until SIGINT/SIGTERM");
    worker->add_option("--concurrency", worker_options.concurrency, "processor threads (default 4)")
        ->check(CLI::Range(1, 1024));
    worker->add_option("--queue", worker_options.queue, "only this queue");
    worker->add_option("--grace", worker_options.grace_period,
                       "seconds to finish tasks in flight on stop (default 30)");
    worker->callback([&] {
        action = [&] {
            worker_options.task_timeout = WorkerOptions::from_env().task_timeout;
            const sigset_t signals = block_stop_signals();  // inherited by the worker's threads
            OpenQueue q(g);
            Worker w(q.queue, worker_options, SpeechEngines::from_env(), webhook_sender());
            w.start();
            std::fprintf(stderr, "voxq worker: %d processors on %s\n", worker_options.concurrency,
                         redact_credentials(q.queue.config().database_url).c_str());
            int sig = 0;
            sigwait(&signals, &sig);
            std::fprintf(stderr, "voxq worker: stopping (finishing tasks in flight)\n");
            w.stop();
            const WorkerCounters& c = w.counters();
            std::fprintf(
                stderr,
                "voxq worker: completed %lld, retried %lld, discarded %lld, released %lld; "
                "%lld items delivered, %.1f s of audio; processor time: synthesis %.2f s, "
                "encoding %.2f s, delivery %.2f s\n",
                static_cast<long long>(c.completed.load()),
                static_cast<long long>(c.retried.load()),
                static_cast<long long>(c.discarded.load()),
                static_cast<long long>(c.released.load()),
                static_cast<long long>(c.items_delivered.load()),
                static_cast<double>(c.audio_ms.load()) / 1000.0,
                static_cast<double>(c.synthesis.sum_us.load()) / 1e6,
                static_cast<double>(c.encoding_us.load()) / 1e6,
                static_cast<double>(c.delivery_us.load()) / 1e6);
            return 0;
        };
    });

    ServerConfig serve_config;
    WorkerOptions serve_workers;
    bool serve_no_worker = false;
    auto* serve = app.add_subcommand(
        "serve", "the HTTP API, /metrics, the dashboard, and a worker pool, until SIGINT/SIGTERM");
    serve->add_option("--host", serve_config.host,
                      "address to listen on (default 127.0.0.1; others need VOXQ_API_TOKEN)");
    serve->add_option("--port", serve_config.port, "port (default 8080)")
        ->check(CLI::Range(1, 65535));
    serve->add_flag("--no-worker", serve_no_worker, "API only: run workers elsewhere");
    serve
        ->add_option("--concurrency", serve_workers.concurrency,
                     "worker processor threads (default 4)")
        ->check(CLI::Range(1, 1024));
    serve->callback([&] {
        action = [&] {
            const std::string host = serve_config.host;
            const int port = serve_config.port;
            ServerConfig config = ServerConfig::from_env();
            config.host = host;
            config.port = port;
            config.validate();                              // before opening anything
            const sigset_t signals = block_stop_signals();  // inherited by every thread
            OpenQueue q(g);
            const auto engines = SpeechEngines::from_env();
            // The dashboard's inbox takes signed deliveries only: without a
            // configured secret, this process's workers sign with one of its own.
            WebhookConfig webhook = WebhookConfig::from_env();
            if (webhook.secrets.empty()) webhook.secrets.push_back(random_webhook_secret());
            config.inbox_secrets = webhook.secrets;
            std::unique_ptr<Worker> workers;
            if (!serve_no_worker) {
                serve_workers.task_timeout = WorkerOptions::from_env().task_timeout;
                workers = std::make_unique<Worker>(q.queue, serve_workers, engines,
                                                   std::make_shared<WebhookSender>(webhook));
            }
            ApiServer server(q.queue, config, workers.get(), engines);
            if (workers) workers->start();
            std::fprintf(
                stderr, "voxq serve: http://%s:%d/ on %s, %s\n", config.host.c_str(), server.port(),
                redact_credentials(q.queue.config().database_url).c_str(),
                workers ? (std::to_string(serve_workers.concurrency) + " worker processors").c_str()
                        : "no workers (--no-worker)");
            serve_until_signalled(
                signals, [&] { server.run(); }, [&] { server.stop(); });
            std::fprintf(stderr, "voxq serve: stopping\n");
            if (workers) workers->stop();
            return 0;
        };
    });

    SinkConfig sink_config;
    std::string sink_dir, sink_secret;
    auto* sink = app.add_subcommand(
        "sink", "a webhook receiver that verifies signatures and saves what it gets");
    sink->add_option("--host", sink_config.host, "address to listen on (default 127.0.0.1)");
    sink->add_option("--port", sink_config.port, "port to listen on")
        ->required()
        ->check(CLI::Range(1, 65535));
    sink->add_option("--dir", sink_dir, "where to save the deliveries")->required();
    sink->add_option("--secret", sink_secret,
                     "whsec_... secret(s), space-separated (prefer VOXQ_SINK_SECRET: the "
                     "command line is visible to every user of the machine)");
    sink->callback([&] {
        action = [&] {
            sink_config.dir = sink_dir;
            if (sink_secret.empty()) {
                if (const char* env = std::getenv("VOXQ_SINK_SECRET")) sink_secret = env;
            }
            std::stringstream secrets(sink_secret);
            for (std::string s; secrets >> s;) sink_config.secrets.push_back(s);
            return run_sink(sink_config);
        };
    });

    auto* migrate = app.add_subcommand("migrate", "create or upgrade the schema");
    migrate->callback([&] {
        action = [&] {
            OpenQueue q(g);
            std::printf("schema up to date\n");
            return 0;
        };
    });

    auto* version = app.add_subcommand("version", "print the version");
    version->callback([&] {
        action = [] {
            std::printf("voxq %s\n", VOXQ_VERSION);
            return 0;
        };
    });

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        (void)app.exit(e);
        return 2;
    }
    try {
        status = action ? action() : 0;
    } catch (const CLI::ValidationError& e) {
        std::fprintf(stderr, "voxq: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "voxq: %s\n", one_line(redact_credentials(e.what()), 2000).c_str());
        return 1;
    }
    return status;
}

}  // namespace voxq::cli
