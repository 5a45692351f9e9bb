// voxq retry: one retry sweep, printing what moved.
#include <cstdio>

#include "cli/app.hpp"
#include "cli/format.hpp"

namespace voxq::cli {

void add_retry(const CommandContext& ctx) {
    auto size = std::make_shared<std::int64_t>(0);
    auto* cmd = ctx.app.add_subcommand("retry", "run one retry sweep and print what moved");
    cmd->add_option("--size", *size, "at most this many tasks (default QUEUE_BATCH_SIZE)");
    ctx.on_run(cmd, [size, &ctx_globals = ctx.globals] {
        OpenQueue q(ctx_globals);
        const auto moved = q.queue.retry(*size > 0 ? std::optional(*size) : std::nullopt);
        for (const Task& t : moved) {
            std::printf("%s -> %s at %s\n", t.id.c_str(), std::string(to_string(t.state)).c_str(),
                        iso_time(t.schedule_at).c_str());
        }
        std::printf("moved %zu\n", moved.size());
        return 0;
    });
}

}  // namespace voxq::cli
