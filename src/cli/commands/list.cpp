// voxq list: tasks newest first, a page at a time.
#include <cstdio>
#include <iostream>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "voxq/json.hpp"

namespace voxq::cli {

void add_list(const CommandContext& ctx) {
    struct Options {
        std::string state, queue, cursor;
        std::int64_t limit = 50;
        bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand("list", "list tasks, newest first");
    cmd->add_option("--state", o->state, "only this state");
    cmd->add_option("--queue", o->queue, "only this queue");
    cmd->add_option("--limit", o->limit, "page size (default 50)");
    cmd->add_option("--cursor", o->cursor, "next_cursor of the previous page");
    cmd->add_flag("--json", o->json, "print {\"tasks\": [...], \"next_cursor\"}");
    ctx.on_run(cmd, [o, &ctx_globals = ctx.globals] {
        TaskFilter filter;
        if (!o->state.empty()) {
            filter.state = task_state_from(o->state, "--state");
        }
        filter.queue = o->queue;
        OpenQueue q(ctx_globals);
        const TaskPage page = q.queue.list_tasks(filter, o->limit, o->cursor);
        if (o->json) {
            std::cout << task_page_to_json(page) << "\n";
        } else {
            print_task_table(page.tasks);
            if (!page.next_cursor.empty())
                std::printf("next page: --cursor %s\n", page.next_cursor.c_str());
        }
        return 0;
    });
}

}  // namespace voxq::cli
