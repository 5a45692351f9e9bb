// voxq check: is the database sound? Exit 0 when it is, 1 with one line per
// finding when not. Never migrates and never writes: it must be safe to point
// at a damaged file.
#include <cstdio>
#include <iostream>

#include "cli/app.hpp"
#include <nlohmann/json.hpp>
#include "voxq/store.hpp"

namespace voxq::cli {

using nlohmann::json;

void add_check(const CommandContext& ctx) {
    auto json_output = std::make_shared<bool>(false);
    auto* cmd = ctx.app.add_subcommand(
        "check",
        "check the database: schema version, integrity, counters against rows, state rules");
    cmd->add_flag("--json", *json_output, "print the findings as JSON");
    ctx.on_run(cmd, [json_output, &g = ctx.globals] {
        const QueueConfig config = load_config(g);
        std::vector<StoreFinding> findings;
        try {
            const std::unique_ptr<Store> store = open_store(config);
            findings = store->check();
            store->close();
        } catch (const StoreError& e) {
            // A file SQLite cannot even open as a database is a finding too.
            findings.push_back({"integrity", e.what()});
        }
        if (*json_output) {
            json out = json::array();
            for (const StoreFinding& f : findings) {
                out.push_back({{"kind", f.kind}, {"detail", f.detail}});
            }
            std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
        } else {
            for (const StoreFinding& f : findings) {
                std::printf("%s: %s\n", f.kind.c_str(), f.detail.c_str());
            }
            if (findings.empty()) std::printf("ok\n");
        }
        return findings.empty() ? 0 : 1;
    });
}

}  // namespace voxq::cli
