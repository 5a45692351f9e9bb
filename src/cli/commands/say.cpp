// voxq say: synthesize locally into a file (no queue).
#include <cstdio>
#include <ctime>
#include <fstream>

#include "cli/app.hpp"
#include "cli/format.hpp"
#include "voxq/audio_format.hpp"
#include "voxq/speech.hpp"
#include "voxq/webhook.hpp"

namespace voxq::cli {

namespace {

struct Options {
    std::string voice, text, out, format = "wav";
    double speed = 1.0;
};

// -o s3://BUCKET/KEY: stored with the workers' storage settings; prints a link.
int upload(const Options& o, const Audio& audio, const EncodedAudio& encoded) {
    const std::string rest = o.out.substr(5);
    const std::size_t slash = rest.find('/');
    if (slash == std::string::npos || slash + 1 == rest.size())
        throw ValidationError("-o " + o.out + ": give s3://BUCKET/KEY");
    const std::string key = rest.substr(slash + 1);
    const ObjectStorage storage(*StorageConfig::from_env("s3://" + rest.substr(0, slash)));
    const WebhookOutcome stored = storage.put(key, encoded.bytes, encoded.content_type);
    if (stored.kind != WebhookOutcome::Kind::Delivered) throw QueueError(stored.message);
    const AudioLink link = storage.presigned_get(key, std::time(nullptr));
    std::printf("%s: %.2f s at %d Hz\n%s\n", o.out.c_str(), audio.seconds(), audio.sample_rate,
                link.url.c_str());
    return 0;
}

}  // namespace

void add_say(const CommandContext& ctx) {
    auto o = std::make_shared<Options>();
    auto* cmd = ctx.app.add_subcommand("say", "synthesize locally into a file");
    cmd->add_option("--voice", o->voice, "engine.voice, e.g. espeak.en-us")->required();
    cmd->add_option("--text", o->text, "what to say")->required();
    cmd->add_option("-o,--output", o->out,
                    "file to write, or s3://BUCKET/KEY (object storage settings as for workers)")
        ->required();
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
        if (o->out.rfind("s3://", 0) == 0) return upload(*o, audio, encoded);
        std::ofstream out(o->out, std::ios::binary);
        out << encoded.bytes;
        if (!out) throw QueueError("cannot write " + o->out);
        std::printf("%s: %.2f s at %d Hz\n", o->out.c_str(), audio.seconds(), audio.sample_rate);
        return 0;
    });
}

}  // namespace voxq::cli
