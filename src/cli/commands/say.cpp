// voxq say: synthesize locally into a file (no queue).
#include <cstdio>
#include <fstream>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "voxq/audio_format.hpp"
#include "voxq/speech.hpp"

namespace voxq::cli {

void add_say(const CommandContext& ctx) {
    struct Options {
        std::string voice, text, out, format = "wav";
        double speed = 1.0;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand("say", "synthesize locally into a file");
    cmd->add_option("--voice", o->voice, "engine.voice, e.g. espeak.en-us")->required();
    cmd->add_option("--text", o->text, "what to say")->required();
    cmd->add_option("-o,--output", o->out, "file to write")->required();
    cmd->add_option("--format", o->format, audio_format_names());
    cmd->add_option("--speed", o->speed, "0.25 to 4.0");
    ctx.on_run(cmd, [o] {
        Task check;
        check.items.push_back(
            TaskItem{{o->text, o->voice, o->speed, o->format}, "http://localhost/"});
        WorkerQueue(QueueConfig{}).validate_task(check);
        const auto engines = SpeechEngines::from_env();
        const Audio audio = engines->synthesize(check.items[0].request);
        const EncodedAudio encoded = encode_audio(audio, o->format);  // before creating the file
        std::ofstream out(o->out, std::ios::binary);
        out << encoded.bytes;
        if (!out) throw QueueError("cannot write " + o->out);
        std::printf("%s: %.2f s at %d Hz\n", o->out.c_str(), audio.seconds(), audio.sample_rate);
        return 0;
    });
}

}  // namespace voxq::cli
