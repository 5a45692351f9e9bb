// voxq purge: delete finished tasks older than a duration.
#include <cstdio>
#include <sstream>

#include "cli/app.hpp"
#include "cli/format.hpp"

namespace voxq::cli {

void add_purge(const CommandContext& ctx) {
    struct Options {
        std::string states, older;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand("purge", "delete finished tasks older than a duration");
    cmd->add_option("--state", o->states, "COMPLETED,CANCELLED,DISCARDED (comma-separated)")
        ->required();
    cmd->add_option("--older-than", o->older, "e.g. 30s, 12h, 7d")->required();
    ctx.on_run(cmd, [o, &ctx_globals = ctx.globals] {
        std::vector<TaskState> states;
        std::stringstream ss(o->states);
        for (std::string name; std::getline(ss, name, ',');) {
            states.push_back(task_state_from(name, "--state"));
        }
        const double older = parse_duration(o->older);
        OpenQueue q(ctx_globals);
        std::printf("purged %lld\n", static_cast<long long>(q.queue.purge(states, older)));
        return 0;
    });
}

}  // namespace voxq::cli
