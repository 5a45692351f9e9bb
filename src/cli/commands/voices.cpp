// voxq voices: the voices of one engine.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "voxq/speech.hpp"

namespace voxq::cli {

void add_voices(const CommandContext& ctx) {
    struct Options {
        bool json = false;
        std::string engine = "espeak";
    };
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand("voices", "list the voices of an engine");
    cmd->add_option("--engine", o->engine,
                    "engine name: espeak, or one set by VOXQ_ENGINE_<NAME>_URL");
    cmd->add_flag("--json", o->json, "print JSON");
    ctx.on_run(cmd, [o] {
        const auto engines = SpeechEngines::from_env();
        const auto engine = engines->engine(o->engine);
        if (!engine) {
            throw ValidationError("--engine: " + SpeechEngines::not_configured(o->engine));
        }
        const auto names = engine->voices();
        if (o->json) {
            std::cout << nlohmann::json(names).dump() << "\n";
        } else {
            for (const std::string& n : names) std::cout << o->engine << "." << n << "\n";
        }
        return 0;
    });
}

}  // namespace voxq::cli
