#include "cli/app.hpp"

#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "cli/format.hpp"
#include "util/text.hpp"
#include "voxq/log.hpp"

namespace voxq::cli {

QueueConfig load_config(const Globals& g) {
    QueueConfig config = QueueConfig::from_env();
    if (!g.database_url.empty()) {
        config.database_url = g.database_url;
        config.validate();
    }
    return config;
}

sigset_t block_stop_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return signals;
}

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

std::shared_ptr<WebhookSender> webhook_sender() {
    return std::make_shared<WebhookSender>(WebhookConfig::from_env());
}

int run(int argc, char** argv) {
    CLI::App app{"voxq: a durable queue for text-to-speech work"};
    app.require_subcommand(1);
    Globals g;
    app.add_option(
        "--database-url", g.database_url,
        "database URL (else QUEUE_DATABASE_URL, else sqlite+aiosqlite:///data/queue.db)");

    std::function<int()> action;
    const CommandContext ctx(app, g, action);
    for (void (*add)(const CommandContext&) :
         {add_enqueue, add_stats, add_list, add_show, add_transitions, add_retry, add_purge,
          add_say, add_voices, add_worker, add_serve, add_sink, add_secret, add_migrate, add_check,
          add_version, add_config}) {
        add(ctx);
    }

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
        // A bad VOXQ_LOG_LEVEL or VOXQ_LOG_FORMAT is reported before anything runs.
        (void)default_logger();
        return action ? action() : 0;
    } catch (const CLI::ValidationError& e) {
        std::fprintf(stderr, "voxq: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "voxq: %s\n", one_line(redact_credentials(e.what()), 2000).c_str());
        return 1;
    }
}

}  // namespace voxq::cli
