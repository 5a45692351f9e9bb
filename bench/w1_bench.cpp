// W1 (../shared/peers/README.md) on voxq's C++ API, plus stats at scale.
//
//   voxq_bench w1    --db PATH --sync NORMAL|FULL [--n 20000] [--latency-n 1000] [--workers 4]
//   voxq_bench stats --db PATH --rows 10000000
//
// Prints one "RESULT {json}" line per run; scripts/bench.sh makes the table.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "voxq/queue.hpp"
#include "voxq/version.hpp"

using namespace std::chrono;
using voxq::Task;
using voxq::TaskItem;

namespace {

double seconds_since(steady_clock::time_point t0) {
    return duration<double>(steady_clock::now() - t0).count();
}

// A W1 payload: ~120 characters of English, kokoro.af_heart, a loopback URL.
std::string w1_text(std::mt19937& rng) {
    static const char* words[] = {
        "the",      "quick", "brown",   "fox",    "jumps",  "over",   "a",       "lazy",
        "dog",      "while", "small",   "birds",  "sing",   "softly", "in",      "early",
        "morning",  "light", "and",     "people", "walk",   "to",     "work",    "along",
        "quiet",    "river", "streets", "near",   "old",    "stone",  "bridges", "where",
        "children", "play",  "before",  "school", "begins", "each",   "sunny",   "day"};
    std::string text;
    while (text.size() < 118) {
        if (!text.empty()) text += ' ';
        text += words[rng() % std::size(words)];
    }
    text.resize(119);
    return text + ".";
}

Task w1_task(std::mt19937& rng) {
    Task t;
    t.items.push_back(TaskItem{{w1_text(rng), "kokoro.af_heart"}, "http://127.0.0.1:9/cb"});
    return t;
}

// Resident set size now, in MiB (from /proc/self/statm).
double rss_mb() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    long pages_total = 0, pages_resident = 0;
    if (f != nullptr) {
        if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
        std::fclose(f);
    }
    return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) /
           1048576.0;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(idx, v.size() - 1)];
}

void remove_db(const std::string& path) {
    if (path.rfind("postgres", 0) == 0) {
        // A fresh schema: drop the old one through the store's own connection.
        std::string cmd = "psql -q -X '" + path +
                          "' -c 'SET client_min_messages = warning' -c 'DROP SCHEMA IF EXISTS "
                          "voxq_bench CASCADE' >/dev/null";
        if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not drop voxq_bench\n");
        return;
    }
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}

// `db`: a SQLite file path, or a postgresql:// URL.
bool is_postgres(const std::string& db) {
    return db.rfind("postgres", 0) == 0;
}

voxq::QueueConfig config_for(const std::string& db, const std::string& sync) {
    voxq::QueueConfig config;
    config.database_url =
        is_postgres(db) ? db : "sqlite:///" + std::filesystem::absolute(db).string();
    if (is_postgres(db)) config.postgres_schema = "voxq_bench";
    config.sqlite_synchronous =
        sync == "FULL" ? voxq::SqliteSynchronous::Full : voxq::SqliteSynchronous::Normal;
    return config;
}

std::string store_name(const std::string& db, const std::string& sync) {
    if (is_postgres(db)) return "PostgreSQL synchronous_commit=on";
    return std::string("SQLite ") + voxq::sqlite_version() + " WAL+" + sync;
}

// Worker threads as the guide's worker loop: claim a few, acknowledge each one.
// `on_task` runs at handler start.
template <typename OnTask>
std::vector<std::thread> start_workers(voxq::WorkerQueue& queue, int n, std::atomic<bool>& stop,
                                       OnTask on_task) {
    std::vector<std::thread> workers;
    for (int i = 0; i < n; ++i) {
        workers.emplace_back([&queue, &stop, on_task] {
            while (!stop.load()) {
                const std::uint64_t epoch = queue.work_epoch();
                auto tasks = queue.dequeue(10);
                if (tasks.empty()) {
                    queue.wait_for_work(epoch, 0.05);
                    continue;
                }
                for (const Task& t : tasks) {
                    on_task(t);
                    queue.mark_as_complete(t.id, t.attempt_count);
                }
            }
        });
    }
    return workers;
}

int run_w1(const std::string& db, const std::string& sync, std::size_t n, std::size_t latency_n,
           int worker_threads) {
    remove_db(db);
    voxq::WorkerQueue queue(config_for(db, sync));
    queue.initialize();
    std::mt19937 rng(42);

    // Enqueue: N tasks in batches of 100, each batch built as a producer would.
    auto t0 = steady_clock::now();
    for (std::size_t i = 0; i < n; i += 100) {
        std::vector<Task> batch;
        batch.reserve(100);
        for (std::size_t k = i; k < std::min(n, i + 100); ++k) batch.push_back(w1_task(rng));
        queue.enqueue(batch);
    }
    const double enqueue_rate = static_cast<double>(n) / seconds_since(t0);

    // Drain: 4 workers, each task acknowledged on its own; the clock stops when
    // the store reports N completed.
    std::atomic<bool> stop = false;
    std::atomic<std::size_t> handled = 0;
    t0 = steady_clock::now();
    auto workers = start_workers(queue, worker_threads, stop, [&](const Task&) { ++handled; });
    double drain_rss = rss_mb();
    while (queue.get_queue_stats()["completed"] < static_cast<std::int64_t>(n)) {
        std::this_thread::sleep_for(milliseconds(1));
        drain_rss = std::max(drain_rss, rss_mb());
    }
    const double drain_rate = static_cast<double>(n) / seconds_since(t0);

    // Latency: idle workers; tasks enqueued one call at a time at 200/s.
    std::vector<std::atomic<std::int64_t>> started_ns(latency_n);
    std::vector<std::int64_t> enqueue_ns(latency_n);
    std::map<std::string, std::size_t> index_of;
    std::mutex index_mutex;
    stop = true;
    for (auto& w : workers) w.join();
    stop = false;
    std::vector<Task> latency_tasks;
    for (std::size_t i = 0; i < latency_n; ++i) {
        latency_tasks.push_back(w1_task(rng));
        latency_tasks.back().id = "lat-" + std::to_string(i);
    }
    auto now_ns = [] {
        return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
    };
    workers = start_workers(queue, worker_threads, stop, [&](const Task& t) {
        if (t.id.rfind("lat-", 0) == 0) started_ns[std::stoul(t.id.substr(4))] = now_ns();
    });
    std::this_thread::sleep_for(milliseconds(100));  // workers idle
    auto next = steady_clock::now();
    for (std::size_t i = 0; i < latency_n; ++i) {
        std::this_thread::sleep_until(next);
        next += microseconds(5000);
        std::vector<Task> one{latency_tasks[i]};
        enqueue_ns[i] = now_ns();
        queue.enqueue(one);
    }
    while (queue.get_queue_stats()["completed"] < static_cast<std::int64_t>(n + latency_n)) {
        std::this_thread::sleep_for(milliseconds(1));
    }
    stop = true;
    for (auto& w : workers) w.join();
    std::vector<double> latencies_ms;
    for (std::size_t i = 0; i < latency_n; ++i) {
        latencies_ms.push_back(static_cast<double>(started_ns[i].load() - enqueue_ns[i]) / 1e6);
    }
    const auto stats = queue.get_queue_stats();
    const bool verified = stats.at("completed") == static_cast<std::int64_t>(n + latency_n) &&
                          handled.load() == n && stats.at("total") == stats.at("completed");
    std::printf(
        "RESULT {\"system\":\"voxq\",\"store\":\"%s\",\"workers\":%d,\"n\":%zu,"
        "\"enqueue\":%.0f,"
        "\"drain\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"drain_rss_mb\":%.1f,\"verified\":%s}\n",
        store_name(db, sync).c_str(), worker_threads, n, enqueue_rate, drain_rate,
        percentile(latencies_ms, 0.5), percentile(latencies_ms, 0.99), drain_rss,
        verified ? "true" : "false");
    queue.close();
    remove_db(db);
    return verified ? 0 : 1;
}

// get_queue_stats() and one claim+ack with `rows` tasks stored.
int run_stats(const std::string& db, std::size_t rows) {
    remove_db(db);
    voxq::WorkerQueue queue(config_for(db, "NORMAL"));
    queue.initialize();
    std::mt19937 rng(7);
    auto t0 = steady_clock::now();
    for (std::size_t done = 0; done < rows; done += 1000) {
        std::vector<Task> batch;
        for (std::size_t k = done; k < std::min(rows, done + 1000); ++k)
            batch.push_back(w1_task(rng));
        queue.enqueue(batch);
        if (done % 1'000'000 == 0 && done > 0) std::fprintf(stderr, "  stored %zu\n", done);
    }
    const double fill_s = seconds_since(t0);
    std::vector<double> stats_ms, claim_ms;
    for (int i = 0; i < 200; ++i) {
        t0 = steady_clock::now();
        const auto stats = queue.get_queue_stats();
        stats_ms.push_back(seconds_since(t0) * 1e3);
        if (stats.at("total") != static_cast<std::int64_t>(rows)) return 1;
    }
    for (int i = 0; i < 200; ++i) {
        t0 = steady_clock::now();
        for (const Task& t : queue.dequeue(10)) queue.mark_as_complete(t.id, t.attempt_count);
        claim_ms.push_back(seconds_since(t0) * 1e3);
    }
    std::printf(
        "RESULT {\"system\":\"voxq stats\",\"rows\":%zu,\"fill_s\":%.1f,"
        "\"stats_p50_ms\":%.3f,\"stats_p99_ms\":%.3f,\"claim10_ack_p50_ms\":%.3f,"
        "\"db_mb\":%.0f}\n",
        rows, fill_s, percentile(stats_ms, 0.5), percentile(stats_ms, 0.99),
        percentile(claim_ms, 0.5),
        is_postgres(db) ? 0.0 : static_cast<double>(std::filesystem::file_size(db)) / 1048576.0);
    queue.close();
    remove_db(db);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr,
                     "usage: voxq_bench w1|stats --db PATH [--sync S] [--n N] [--rows N]\n");
        return 2;
    }
    const std::string mode = argv[1];
    std::map<std::string, std::string> opt = {{"--db", "data/bench.db"}, {"--sync", "NORMAL"},
                                              {"--n", "20000"},          {"--latency-n", "1000"},
                                              {"--rows", "1000000"},     {"--workers", "4"}};
    for (int i = 2; i + 1 < argc; i += 2) opt[argv[i]] = argv[i + 1];
    if (!is_postgres(opt["--db"])) {
        std::filesystem::create_directories(std::filesystem::path(opt["--db"]).parent_path());
    }
    if (mode == "w1") {
        return run_w1(opt["--db"], opt["--sync"], std::stoul(opt["--n"]),
                      std::stoul(opt["--latency-n"]), std::stoi(opt["--workers"]));
    }
    if (mode == "stats") return run_stats(opt["--db"], std::stoul(opt["--rows"]));
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
}
