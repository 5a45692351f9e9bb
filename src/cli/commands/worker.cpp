// voxq worker: claim, synthesize and deliver until SIGINT/SIGTERM.
#include "voxq/worker.hpp"

#include <cstdio>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "util/text.hpp"
#include "voxq/log.hpp"
#include "voxq/speech.hpp"
#include "voxq/version.hpp"

namespace voxq::cli {

void add_worker(const CommandContext& ctx) {
    auto options = std::make_shared<WorkerOptions>();
    auto* cmd = ctx.app.add_subcommand("worker",
                                       "claim, synthesize and deliver tasks until SIGINT/SIGTERM");
    cmd->add_option("--concurrency", options->concurrency, "processor threads (default 4)")
        ->check(CLI::Range(1, 1024));
    cmd->add_option("--queue", options->queue, "only this queue");
    cmd->add_option("--grace", options->grace_period,
                    "seconds to finish tasks in flight on stop (default 30)");
    ctx.on_run(cmd, [options, &ctx_globals = ctx.globals] {
        (*options).task_timeout = WorkerOptions::from_env().task_timeout;
        const sigset_t signals = block_stop_signals();  // inherited by the worker's threads
        OpenQueue q(ctx_globals);
        Worker w(q.queue, (*options), SpeechEngines::from_env(), webhook_sender());
        w.start();
        Logger& log = q.queue.logger();
        log.info("voxq worker: started",
                 {{"processors", (*options).concurrency},
                  {"queue", (*options).queue.empty() ? "(every queue)" : (*options).queue},
                  {"database", redact_credentials(q.queue.config().database_url)},
                  {"version", version()}});
        int sig = 0;
        sigwait(&signals, &sig);
        log.info("voxq worker: stopping (finishing tasks in flight)");
        w.stop();
        const WorkerCounters& c = w.counters();
        // Processor time spent in each stage, for capacity planning (bench_speech reads it).
        log.info("voxq worker: stopped",
                 {{"completed", c.completed.load()},
                  {"retried", c.retried.load()},
                  {"discarded", c.discarded.load()},
                  {"released", c.released.load()},
                  {"items_delivered", c.items_delivered.load()},
                  {"audio_seconds", static_cast<double>(c.audio_ms.load()) / 1000.0},
                  {"synthesis_seconds", static_cast<double>(c.synthesis.sum_us.load()) / 1e6},
                  {"encoding_seconds", static_cast<double>(c.encoding_us.load()) / 1e6},
                  {"delivery_seconds", static_cast<double>(c.delivery_us.load()) / 1e6},
                  {"capacity_wait_seconds", static_cast<double>(c.capacity_wait_us.load()) / 1e6},
                  {"speech_cache_hits", SpeechCache::hits()},
                  {"speech_cache_misses", SpeechCache::misses()}});
        return 0;
    });
}

}  // namespace voxq::cli
