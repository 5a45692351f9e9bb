// voxq secret: a new webhook secret for VOXQ_WEBHOOK_SECRET and the receiver.
#include <cstdio>

#include "cli/app.hpp"
#include "voxq/webhook.hpp"

namespace voxq::cli {

void add_secret(const CommandContext& ctx) {
    auto* cmd = ctx.app.add_subcommand(
        "secret", "print a new webhook secret (whsec_ and 32 random bytes, base64)");
    ctx.on_run(cmd, [] {
        std::printf("%s\n", random_webhook_secret().c_str());
        return 0;
    });
}

}  // namespace voxq::cli
