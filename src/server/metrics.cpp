#include "server/metrics.hpp"

#include <cstdio>
#include <initializer_list>

#include "voxq/speech.hpp"

namespace voxq {

namespace {

// A label value: backslash, double quote and newline escaped.
std::string label(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void histogram(std::string& out, const char* name, const char* help, const DurationHistogram& h) {
    header(out, name, "histogram", help);
    std::int64_t cumulative = 0;
    for (std::size_t i = 0; i < h.buckets.size(); ++i) {
        cumulative += h.buckets[i].load();
        out += name;
        out += "_bucket{le=\"";
        out +=
            i < DurationHistogram::kBounds.size() ? number(DurationHistogram::kBounds[i]) : "+Inf";
        out += "\"} " + std::to_string(cumulative) + "\n";
    }
    out += name;
    out += "_sum " + number(static_cast<double>(h.sum_us.load()) / 1e6) + "\n";
    out += name;
    out += "_count " + std::to_string(cumulative) + "\n";
}

// A counter family with one `outcome` label.
void outcome_counters(std::string& out, const char* name, const char* help,
                      std::initializer_list<std::pair<const char*, std::int64_t>> values) {
    header(out, name, "counter", help);
    for (const auto& [outcome, n] : values) {
        out += name;
        out += "{outcome=\"";
        out += outcome;
        out += "\"} " + std::to_string(n) + "\n";
    }
}

}  // namespace

std::string render_metrics(const std::vector<QueueOverview>& queues, bool store_healthy,
                           const WorkerCounters* worker) {
    std::string out;
    header(out, "voxq_store_healthy", "gauge",
           "1 while the store looks sound; 0 once it found damage and refuses writes.");
    out += store_healthy ? "voxq_store_healthy 1\n" : "voxq_store_healthy 0\n";
    header(out, "voxq_tasks", "gauge", "Tasks stored, by queue and state.");
    for (const QueueOverview& q : queues) {
        for (const auto& [state, n] : q.stats) {
            if (state == "total") continue;
            out += "voxq_tasks{queue=\"" + label(q.queue) + "\",state=\"" + state + "\"} " +
                   std::to_string(n) + "\n";
        }
    }
    header(out, "voxq_oldest_due_task_age_seconds", "gauge",
           "How long the oldest due PENDING task of each queue has waited (0: none due).");
    for (const QueueOverview& q : queues) {
        out += "voxq_oldest_due_task_age_seconds{queue=\"" + label(q.queue) + "\"} " +
               number(q.oldest_due_age.value_or(0)) + "\n";
    }
    header(out, "voxq_speech_cache_hits_total", "counter",
           "Syntheses served from the speech cache (VOXQ_SPEECH_CACHE_DIR) in this process.");
    out += "voxq_speech_cache_hits_total " + std::to_string(SpeechCache::hits()) + "\n";
    header(out, "voxq_speech_cache_misses_total", "counter",
           "Syntheses the speech cache did not hold, in this process.");
    out += "voxq_speech_cache_misses_total " + std::to_string(SpeechCache::misses()) + "\n";
    if (worker == nullptr) return out;
    histogram(out, "voxq_task_duration_seconds",
              "One attempt of a task in this process's workers, from its start to its outcome.",
              worker->claim_to_finish);
    histogram(out, "voxq_synthesis_duration_seconds", "One item's speech synthesis.",
              worker->synthesis);
    outcome_counters(out, "voxq_webhook_deliveries_total", "Webhook deliveries by outcome class.",
                     {{"delivered", worker->items_delivered.load()},
                      {"transient", worker->webhooks_transient.load()},
                      {"permanent", worker->webhooks_permanent.load()},
                      {"refused", worker->webhooks_refused.load()}});
    outcome_counters(out, "voxq_worker_tasks_total", "Task outcomes in this process's workers.",
                     {{"completed", worker->completed.load()},
                      {"retried", worker->retried.load()},
                      {"discarded", worker->discarded.load()},
                      {"released", worker->released.load()}});
    header(out, "voxq_audio_seconds_total", "counter", "Seconds of audio delivered.");
    out += "voxq_audio_seconds_total " +
           number(static_cast<double>(worker->audio_ms.load()) / 1000) + "\n";
    return out;
}

}  // namespace voxq
