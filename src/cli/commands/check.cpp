// voxq check: is the database sound? Exit 0 when it is, 1 with one line per
// finding when not. Never migrates and never writes: it must be safe to point
// at a damaged file.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/app.hpp"
#include "voxq/store.hpp"

namespace voxq::cli {

using nlohmann::json;

namespace {

std::vector<StoreFinding> check_database(const QueueConfig& config) {
    const DatabaseLocation where = parse_database_url(config.database_url);
    if (where.kind == DatabaseLocation::Kind::Sqlite && where.target != ":memory:" &&
        !std::filesystem::exists(where.target)) {
        // Opening would create an empty database: say there is none instead.
        return {{"schema", "no database at " + where.target}};
    }
    try {
        const std::unique_ptr<Store> store = open_store(config);
        std::vector<StoreFinding> findings = store->check();
        store->close();
        return findings;
    } catch (const StoreError& e) {
        // A file SQLite cannot even open as a database is a finding too.
        return {{"integrity", e.what()}};
    }
}

}  // namespace

void add_check(const CommandContext& ctx) {
    auto json_output = std::make_shared<bool>(false);
    auto* cmd = ctx.app.add_subcommand(
        "check",
        "check the database: schema version, integrity, counters against rows, state rules");
    cmd->add_flag("--json", *json_output, "print the findings as JSON");
    ctx.on_run(cmd, [json_output, &g = ctx.globals] {
        const std::vector<StoreFinding> findings = check_database(load_config(g));
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
