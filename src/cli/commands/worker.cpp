// voxq worker: claim, synthesize and deliver until SIGINT/SIGTERM.
#include "voxq/worker.hpp"

#include <cstdio>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "util/text.hpp"
#include "voxq/speech.hpp"

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
        std::fprintf(stderr, "voxq worker: %d processors on %s\n", (*options).concurrency,
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
            static_cast<long long>(c.completed.load()), static_cast<long long>(c.retried.load()),
            static_cast<long long>(c.discarded.load()), static_cast<long long>(c.released.load()),
            static_cast<long long>(c.items_delivered.load()),
            static_cast<double>(c.audio_ms.load()) / 1000.0,
            static_cast<double>(c.synthesis.sum_us.load()) / 1e6,
            static_cast<double>(c.encoding_us.load()) / 1e6,
            static_cast<double>(c.delivery_us.load()) / 1e6);
        return 0;
    });
}

}  // namespace voxq::cli
