// The `voxq` command line (SPEC §10): what every command shares. Each command
// lives in src/cli/commands/<name>.cpp as one add_<name>() that declares its
// subcommand, its options (validated by CLI11 where they can be) and its run;
// run() below is the table of them and the one mapping from errors to exit
// statuses: 0 success; 1 failure, with one line on stderr naming the cause;
// 2 bad usage.
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "voxq/config.hpp"
#include "voxq/queue.hpp"
#include "voxq/webhook.hpp"

namespace voxq::cli {

int run(int argc, char** argv);

struct Globals {
    std::string database_url;  // --database-url
};

// Configuration from the environment, with --database-url taking precedence.
QueueConfig load_config(const Globals& g);

// An opened queue for one command.
struct OpenQueue {
    WorkerQueue queue;
    explicit OpenQueue(const Globals& g) : queue(load_config(g)) { queue.initialize(); }
};

// What a command's add_<name>() gets: the app to add its subcommand to, the
// global options, and on_run to say what runs once the command line parsed.
class CommandContext {
  public:
    CommandContext(CLI::App& cli, const Globals& global_options, std::function<int()>& action)
        : app(cli), globals(global_options), action_(action) {}
    CLI::App& app;
    const Globals& globals;
    void on_run(CLI::App* command, std::function<int()> run) const {
        command->callback([&action = action_, run = std::move(run)] { action = run; });
    }

  private:
    std::function<int()>& action_;
};

// Blocks SIGINT and SIGTERM in this thread, and so in every thread started
// after it: a command takes them with sigwait instead.
sigset_t block_stop_signals();
// Runs a server on this thread until SIGINT or SIGTERM (taken by a thread of
// its own, which calls `stop`).
void serve_until_signalled(const sigset_t& signals, const std::function<void()>& run,
                           const std::function<void()>& stop);
// Webhook delivery as VOXQ_WEBHOOK_* configure it.
std::shared_ptr<WebhookSender> webhook_sender();

// The commands, in the order `voxq --help` lists them.
void add_enqueue(const CommandContext& ctx);
void add_stats(const CommandContext& ctx);
void add_list(const CommandContext& ctx);
void add_show(const CommandContext& ctx);
void add_transitions(const CommandContext& ctx);  // cancel, resume, discard
void add_retry(const CommandContext& ctx);
void add_purge(const CommandContext& ctx);
void add_say(const CommandContext& ctx);
void add_voices(const CommandContext& ctx);
void add_worker(const CommandContext& ctx);
void add_serve(const CommandContext& ctx);
void add_sink(const CommandContext& ctx);
void add_migrate(const CommandContext& ctx);
void add_check(const CommandContext& ctx);
void add_secret(const CommandContext& ctx);
void add_version(const CommandContext& ctx);
void add_config(const CommandContext& ctx);

}  // namespace voxq::cli
