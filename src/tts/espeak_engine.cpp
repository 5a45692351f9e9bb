#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "tts/espeak_protocol.hpp"
#include "voxq/tts.hpp"

extern char** environ;

namespace voxq {

struct EspeakEngine::Impl {
    std::string helper;
    std::mutex mutex;  // one request at a time: the helper is single-threaded
    pid_t pid = 0;     // guarded by mutex
    int to_helper = -1;
    int from_helper = -1;

    void start() {
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) != 0) throw SpeechError("espeak: pipe failed", false);
        if (pipe2(out, O_CLOEXEC) != 0) {
            ::close(in[0]);
            ::close(in[1]);
            throw SpeechError("espeak: pipe failed", false);
        }
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, in[0], 0);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        char* argv[] = {helper.data(), nullptr};
        const int rc = posix_spawn(&pid, helper.c_str(), &actions, nullptr, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(in[0]);
        ::close(out[1]);
        if (rc != 0) {
            ::close(in[1]);
            ::close(out[0]);
            pid = 0;
            throw SpeechError("espeak: cannot start " + helper + " (set VOXQ_ESPEAK_HELPER)",
                              false);
        }
        to_helper = in[1];
        from_helper = out[0];
    }

    void stop() {
        if (pid == 0) return;
        ::close(to_helper);  // EOF: the helper exits
        ::close(from_helper);
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        pid = 0;
        to_helper = from_helper = -1;
    }

    // Sends one request and returns the JSON answer (and, for synth, the PCM
    // message). A helper that died is restarted on the next call; the request
    // in flight fails as transient.
    nlohmann::json call(const nlohmann::json& request, std::string* pcm) {
        if (pid == 0) start();
        std::optional<std::string> answer;
        if (espeak::write_message(to_helper, request.dump()))
            answer = espeak::read_message(from_helper);
        nlohmann::json reply =
            answer ? nlohmann::json::parse(*answer, nullptr, false) : nlohmann::json();
        if (reply.is_object() && reply.value("ok", false) && pcm != nullptr) {
            auto bytes = espeak::read_message(from_helper);
            if (!bytes)
                reply = nlohmann::json();
            else
                *pcm = std::move(*bytes);
        }
        if (!reply.is_object()) {
            stop();
            throw SpeechError("espeak: the engine process died during synthesis", false);
        }
        return reply;
    }
};

namespace {
std::string default_helper() {
    if (const char* env = std::getenv("VOXQ_ESPEAK_HELPER")) return env;
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("voxq-espeak") : (self.parent_path() / "voxq-espeak").string();
}
}  // namespace

EspeakEngine::EspeakEngine(std::string helper) : impl_(std::make_unique<Impl>()) {
    impl_->helper = helper.empty() ? default_helper() : std::move(helper);
    // A helper that dies must not take this process down with SIGPIPE.
    signal(SIGPIPE, SIG_IGN);
}

EspeakEngine::~EspeakEngine() {
    std::lock_guard lock(impl_->mutex);
    impl_->stop();
}

Audio EspeakEngine::synthesize(const TextToSpeechRequest& request) {
    const std::size_t dot = request.voice_id.find('.');
    const std::string voice =
        dot == std::string::npos ? request.voice_id : request.voice_id.substr(dot + 1);
    std::lock_guard lock(impl_->mutex);
    std::string pcm;
    const nlohmann::json reply = impl_->call(
        {{"op", "synth"}, {"voice", voice}, {"speed", request.speed}, {"text", request.text}},
        &pcm);
    if (!reply.value("ok", false)) {
        throw SpeechError(reply.value("error", std::string("espeak failed")),
                          reply.value("permanent", false));
    }
    Audio audio;
    audio.sample_rate = reply.value("rate", 0);
    audio.samples.resize(pcm.size() / sizeof(std::int16_t));
    std::memcpy(audio.samples.data(), pcm.data(), audio.samples.size() * sizeof(std::int16_t));
    return audio;
}

std::vector<std::string> EspeakEngine::voices() {
    std::lock_guard lock(impl_->mutex);
    const nlohmann::json reply = impl_->call({{"op", "voices"}}, nullptr);
    return reply.value("voices", std::vector<std::string>{});
}

int EspeakEngine::helper_pid() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->pid;
}

std::string encode_wav(const Audio& audio) {
    const auto data_bytes = static_cast<std::uint32_t>(audio.samples.size() * 2);
    std::string out;
    out.reserve(44 + data_bytes);
    auto u32 = [&out](std::uint32_t v) {
        for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
    };
    auto u16 = [&out](std::uint16_t v) {
        out += static_cast<char>(v & 0xFF);
        out += static_cast<char>(v >> 8);
    };
    const auto rate = static_cast<std::uint32_t>(audio.sample_rate);
    out += "RIFF";
    u32(36 + data_bytes);
    out += "WAVEfmt ";
    u32(16);  // fmt chunk size
    u16(1);   // PCM
    u16(1);   // mono
    u32(rate);
    u32(rate * 2);  // byte rate
    u16(2);         // block align
    u16(16);        // bits per sample
    out += "data";
    u32(data_bytes);
    for (std::int16_t s : audio.samples) u16(static_cast<std::uint16_t>(s));  // little-endian
    return out;
}

EncodedAudio encode_audio(const Audio& audio, const std::string& format) {
    if (format == "wav") return {encode_wav(audio), "audio/wav"};
    if (format == "pcm") {
        // Raw little-endian PCM16 mono (the host order on every platform voxq builds for).
        return {std::string(reinterpret_cast<const char*>(audio.samples.data()),
                            audio.samples.size() * sizeof(std::int16_t)),
                "audio/L16;rate=" + std::to_string(audio.sample_rate)};
    }
    throw SpeechError("format '" + format + "' is not supported yet (use wav or pcm)", true);
}

}  // namespace voxq
