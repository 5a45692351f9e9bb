// voxq migrate: create or upgrade the schema.
#include <cstdio>

#include "cli/app.hpp"
#include "cli/format.hpp"

namespace voxq::cli {

void add_migrate(const CommandContext& ctx) {
    auto* cmd = ctx.app.add_subcommand("migrate", "create or upgrade the schema");
    ctx.on_run(cmd, [&g = ctx.globals] {
        OpenQueue q(g);
        std::printf("schema up to date\n");
        return 0;
    });
}

}  // namespace voxq::cli
