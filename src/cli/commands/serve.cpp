// voxq serve: the HTTP API, /metrics, the dashboard and a worker pool.
#include <cstdio>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "util/text.hpp"
#include "voxq/log.hpp"
#include "voxq/server.hpp"
#include "voxq/speech.hpp"
#include "voxq/version.hpp"
#include "voxq/worker.hpp"

namespace voxq::cli {

void add_serve(const CommandContext& ctx) {
    struct Options {
        ServerConfig config;
        WorkerOptions workers;
        bool no_worker = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand(
        "serve", "the HTTP API, /metrics, the dashboard, and a worker pool, until SIGINT/SIGTERM");
    cmd->add_option("--host", o->config.host,
                    "address to listen on (default 127.0.0.1; others need VOXQ_API_TOKEN)");
    cmd->add_option("--port", o->config.port, "port (default 8080)")->check(CLI::Range(1, 65535));
    cmd->add_flag("--no-worker", o->no_worker, "API only: run workers elsewhere");
    cmd->add_option("--concurrency", o->workers.concurrency, "worker processor threads (default 4)")
        ->check(CLI::Range(1, 1024));
    ctx.on_run(cmd, [o, &ctx_globals = ctx.globals] {
        const std::string host = o->config.host;
        const int port = o->config.port;
        ServerConfig config = ServerConfig::from_env();
        config.host = host;
        config.port = port;
        config.validate();                              // before opening anything
        const sigset_t signals = block_stop_signals();  // inherited by every thread
        OpenQueue q(ctx_globals);
        const auto engines = SpeechEngines::from_env();
        // The dashboard's inbox takes signed deliveries only: without a
        // configured secret, this process's workers sign with one of its own.
        WebhookConfig webhook = WebhookConfig::from_env();
        if (webhook.secrets.empty()) webhook.secrets.push_back(random_webhook_secret());
        config.inbox_secrets = webhook.secrets;
        std::unique_ptr<Worker> workers;
        if (!o->no_worker) {
            o->workers.task_timeout = WorkerOptions::from_env().task_timeout;
            workers = std::make_unique<Worker>(q.queue, o->workers, engines,
                                               std::make_shared<WebhookSender>(webhook));
        }
        ApiServer server(q.queue, config, workers.get(), engines);
        if (workers) workers->start();
        Logger& log = q.queue.logger();
        log.info("voxq serve: listening",
                 {{"url", "http://" + config.host + ":" + std::to_string(server.port()) + "/"},
                  {"database", redact_credentials(q.queue.config().database_url)},
                  {"workers", workers ? o->workers.concurrency : 0},
                  {"api_token", config.api_token.empty() ? "none (loopback only)" : "set"},
                  {"version", version()}});
        serve_until_signalled(
            signals, [&] { server.run(); }, [&] { server.stop(); });
        log.info("voxq serve: stopping (finishing tasks in flight)");
        if (workers) workers->stop();
        return 0;
    });
}

}  // namespace voxq::cli
