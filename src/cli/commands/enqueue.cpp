// voxq enqueue: one task from flags, or JSON Lines from a file or stdin, checked
// whole before anything is stored and stored in committed chunks.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "voxq/audio_format.hpp"
#include "voxq/json.hpp"

namespace voxq::cli {

namespace {

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

}  // namespace

void add_enqueue(const CommandContext& ctx) {
    auto o = std::make_shared<EnqueueOptions>();
    auto* enqueue =
        ctx.app.add_subcommand("enqueue", "add tasks (flags for one, --file for JSON Lines)");
    enqueue->add_option("--text", o->text, "text to speak");
    enqueue->add_option("--voice", o->voice, "voice id, engine.voice (e.g. espeak.en-us)");
    enqueue->add_option("--url", o->url, "webhook the audio is POSTed to");
    enqueue->add_option("--schedule-at", o->schedule_at,
                        "Unix time, or +SECONDS / +DURATION from now");
    enqueue->add_option("--priority", o->priority, "higher runs first (default 0)");
    enqueue->add_option("--queue", o->queue, "queue name (default 'default')");
    enqueue->add_option("--dedup-key", o->dedup_key, "idempotency key within the queue");
    enqueue->add_option("--format", o->format, audio_format_names());
    enqueue->add_option("--speed", o->speed, "0.25 to 4.0");
    enqueue->add_option("--file,-f", o->file, "JSON Lines file of tasks, '-' for stdin");
    enqueue->add_option("source", o->file, "'-': read JSON Lines from stdin")
        ->check(CLI::IsMember({"-"}));
    enqueue->add_flag("--json", o->json, "print the ids as a JSON array");
    ctx.on_run(enqueue, [o, &g = ctx.globals] { return cmd_enqueue(g, *o); });
}

}  // namespace voxq::cli
