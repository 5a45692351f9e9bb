// voxq show: one task with its items and error history.
#include <cstdio>
#include <iostream>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "voxq/json.hpp"

namespace voxq::cli {

void add_show(const CommandContext& ctx) {
    struct Options {
        std::string id;
        bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand("show", "one task, with its error history");
    cmd->add_option("id", o->id, "task id")->required();
    cmd->add_flag("--json", o->json, "print JSON");
    ctx.on_run(cmd, [o, &ctx_globals = ctx.globals] {
        OpenQueue q(ctx_globals);
        const Task t = q.queue.get_task(o->id);
        if (o->json) {
            std::cout << task_to_json(t, true) << "\n";
            return 0;
        }
        std::printf(
            "id           %s\nstate        %s\nqueue        %s\npriority     %lld\n"
            "attempts     %lld (max %s)\nschedule_at  %s\ncreated_at   %s\n"
            "updated_at   %s\nlast_error   %s\n",
            t.id.c_str(), std::string(to_string(t.state)).c_str(), t.queue.c_str(),
            static_cast<long long>(t.priority), static_cast<long long>(t.attempt_count),
            t.max_attempts > 0 ? std::to_string(t.max_attempts).c_str() : "default",
            iso_time(t.schedule_at).c_str(), iso_time(t.created_at).c_str(),
            iso_time(t.updated_at).c_str(), one_line(t.last_error, 4096).c_str());
        if (!t.dedup_key.empty())
            std::printf("dedup_key    %s\n", one_line(t.dedup_key, 1024).c_str());
        for (std::size_t i = 0; i < t.items.size(); ++i) {
            const TaskItem& it = t.items[i];
            std::printf("item %zu       %s %s x%.2f -> %s: %s\n", i, it.request.voice_id.c_str(),
                        it.request.format.c_str(), it.request.speed,
                        one_line(it.response_url, 2048).c_str(),
                        one_line(it.request.text, 60).c_str());
        }
        for (const TaskError& e : t.error_history) {
            std::printf("error        attempt %lld at %s: %s\n", static_cast<long long>(e.attempt),
                        iso_time(e.at).c_str(), one_line(e.message, 4096).c_str());
        }
        return 0;
    });
}

}  // namespace voxq::cli
