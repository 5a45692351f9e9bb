// voxq cancel | resume | discard: one id, one guarded transition.
#include <cstdio>

#include "cli/app.hpp"
#include "cli/format.hpp"

namespace voxq::cli {

namespace {

void add_transition(const CommandContext& ctx, const char* name, const char* help,
                    void (*apply)(WorkerQueue&, const std::string&)) {
    auto id = std::make_shared<std::string>();
    auto* cmd = ctx.app.add_subcommand(name, help);
    cmd->add_option("id", *id, "task id")->required();
    ctx.on_run(cmd, [id, apply, name, &g = ctx.globals] {
        OpenQueue q(g);
        apply(q.queue, *id);
        std::printf("%s: %s\n", name, id->c_str());
        return 0;
    });
}

}  // namespace

void add_transitions(const CommandContext& ctx) {
    add_transition(ctx, "cancel", "PENDING -> CANCELLED",
                   [](WorkerQueue& q, const std::string& id) { q.mark_as_cancelled(id); });
    add_transition(ctx, "resume", "DISCARDED -> PENDING, with fresh attempts",
                   [](WorkerQueue& q, const std::string& id) { q.mark_as_resume(id); });
    add_transition(ctx, "discard", "PROCESSING -> DISCARDED",
                   [](WorkerQueue& q, const std::string& id) {
                       q.mark_as_discarded(id, std::nullopt, std::string("discarded by operator"));
                   });
}

}  // namespace voxq::cli
