// voxq sink: a webhook receiver that verifies signatures and saves deliveries.
#include "voxq/sink.hpp"

#include <cstdio>
#include <sstream>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "util/env.hpp"
#include "voxq/log.hpp"

namespace voxq::cli {

namespace {

int run_sink(const SinkConfig& config) {
    const sigset_t signals = block_stop_signals();
    WebhookSink sink(config);
    Logger& log = *default_logger();
    log.info(
        "voxq sink: listening",
        {{"url", "http://" + config.host + ":" + std::to_string(sink.port()) + "/"},
         {"dir", config.dir},
         {"signatures", config.secrets.empty() ? "not required (unsigned accepted)" : "required"}});
    serve_until_signalled(
        signals, [&] { sink.run(); }, [&] { sink.stop(); });
    log.info("voxq sink: stopped", {{"deliveries_saved", sink.received()}});
    return 0;
}

}  // namespace

void add_sink(const CommandContext& ctx) {
    struct Options {
        SinkConfig config;
        std::string dir, secret;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand(
        "sink", "a webhook receiver that verifies signatures and saves what it gets");
    cmd->add_option("--host", o->config.host, "address to listen on (default 127.0.0.1)");
    cmd->add_option("--port", o->config.port, "port to listen on")
        ->required()
        ->check(CLI::Range(1, 65535));
    cmd->add_option("--dir", o->dir, "where to save the deliveries")->required();
    cmd->add_option("--secret", o->secret,
                    "whsec_... secret(s), space-separated (prefer VOXQ_SINK_SECRET: the "
                    "command line is visible to every user of the machine)");
    ctx.on_run(cmd, [o] {
        o->config.dir = o->dir;
        if (o->secret.empty()) {
            o->secret = env::Reader().text("VOXQ_SINK_SECRET").value_or("");
        }
        std::stringstream secrets(o->secret);
        for (std::string s; secrets >> s;) o->config.secrets.push_back(s);
        return run_sink(o->config);
    });
}

}  // namespace voxq::cli
