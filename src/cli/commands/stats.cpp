// voxq stats: task counts per state.
#include <cstdio>
#include <iostream>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "voxq/json.hpp"

namespace voxq::cli {

void add_stats(const CommandContext& ctx) {
    struct Options {
        std::string queue;
        bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand("stats", "task counts per state");
    cmd->add_option("--queue", o->queue, "only this queue");
    cmd->add_flag("--json", o->json, "print JSON");
    ctx.on_run(cmd, [o, &g = ctx.globals] {
        const std::string& queue = o->queue;
        const bool json = o->json;

        OpenQueue q(g);
        const auto stats = q.queue.get_queue_stats(queue);
        if (json) {
            std::cout << stats_to_json(stats) << "\n";
            return 0;
        }
        for (const char* key : {"pending", "processing", "retryable", "completed", "cancelled",
                                "discarded", "total"}) {
            std::printf("%-11s %12lld\n", key, static_cast<long long>(stats.at(key)));
        }
        return 0;
    });
}

}  // namespace voxq::cli
