// voxq version.
#include "voxq/version.hpp"

#include <cstdio>

#include "cli/app.hpp"
#include "cli/format.hpp"

namespace voxq::cli {

void add_version(const CommandContext& ctx) {
    auto* cmd = ctx.app.add_subcommand("version", "print the version");
    ctx.on_run(cmd, [] {
        std::printf("voxq %s\n", voxq::version());
        return 0;
    });
}

}  // namespace voxq::cli
