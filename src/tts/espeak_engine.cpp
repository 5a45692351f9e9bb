#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "tts/espeak_protocol.hpp"
#include "util/env.hpp"
#include "voxq/speech.hpp"

extern char** environ;

namespace voxq {

namespace {

constexpr int kPipeBytes = 1 << 20;  // Linux's default pipe-max-size

// One voxq-espeak process, used by one request at a time (it is single-threaded).
struct Helper {
    std::string helper;
    Logger* log = nullptr;
    bool died = false;  // the last one died: the next start is a restart
    pid_t pid = 0;
    std::atomic<pid_t> running_pid = 0;  // pid, readable while another thread uses the helper
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
        // Room for a whole item's PCM (~440 KB for 30 words) in the pipe, so the
        // helper writes it at once instead of in 64 KiB turns, each a wakeup of
        // both processes. Refused (a lower pipe-max-size) only costs those turns.
        (void)fcntl(out[0], F_SETPIPE_SZ, kPipeBytes);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, in[0], 0);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        // Nothing else of this process leaks into the helper: not the database,
        // not sockets (a listening socket kept open by a helper outlives the server).
        posix_spawn_file_actions_addclosefrom_np(&actions, 3);
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
        running_pid = pid;
        if (died) log->info("espeak helper restarted", {{"pid", pid}});
        died = false;
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
        running_pid = 0;
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
            log->warning(
                "espeak helper died during synthesis; the attempt fails as transient "
                "and the helper restarts on the next request",
                {{"pid", pid}, {"helper", helper}});
            died = true;
            stop();
            throw SpeechError("espeak: the engine process died during synthesis", false);
        }
        return reply;
    }
};

// $VOXQ_ESPEAK_HELPER; else voxq-espeak next to the running program (the build
// tree, the Python package), or in ../libexec/voxq from it (an installed voxq,
// whatever the prefix); else where `cmake --install` was configured to put it.
std::string default_helper() {
    if (auto helper = env::Reader().text("VOXQ_ESPEAK_HELPER")) return *helper;
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        for (const auto& candidate :
             {self.parent_path() / "voxq-espeak",
              self.parent_path().parent_path() / "libexec" / "voxq" / "voxq-espeak"}) {
            if (std::filesystem::exists(candidate, ec)) return candidate.string();
        }
    }
#ifdef VOXQ_ESPEAK_HELPER_INSTALLED
    return VOXQ_ESPEAK_HELPER_INSTALLED;
#else
    return "voxq-espeak";
#endif
}
}  // namespace

// A pool of helpers: requests beyond the pool's size wait for a free one.
struct EspeakEngine::Impl {
    std::shared_ptr<Logger> log;
    mutable std::mutex mutex;
    std::condition_variable returned;
    std::vector<std::unique_ptr<Helper>> helpers;  // all of them, for helper_pid()
    std::vector<Helper*> idle;                     // guarded by mutex

    // Runs `f` with a helper of its own.
    template <typename F>
    auto with_helper(F&& f) {
        Helper* h = nullptr;
        {
            std::unique_lock lock(mutex);
            returned.wait(lock, [&] { return !idle.empty(); });
            h = idle.back();
            idle.pop_back();
        }
        struct Return {
            Impl* impl;
            Helper* h;
            ~Return() {
                {
                    std::lock_guard lock(impl->mutex);
                    impl->idle.push_back(h);
                }
                impl->returned.notify_one();
            }
        } give_back{this, h};
        return f(*h);
    }
};

EspeakEngine::EspeakEngine(std::string helper, int processes, std::shared_ptr<Logger> logger)
    : impl_(std::make_unique<Impl>()) {
    impl_->log = logger ? std::move(logger) : default_logger();
    const std::string path = helper.empty() ? default_helper() : std::move(helper);
    for (int i = 0; i < std::max(1, processes); ++i) {
        impl_->helpers.push_back(std::make_unique<Helper>());
        impl_->helpers.back()->helper = path;
        impl_->helpers.back()->log = impl_->log.get();
        impl_->idle.push_back(impl_->helpers.back().get());
    }
    // A helper that dies must not take this process down with SIGPIPE.
    signal(SIGPIPE, SIG_IGN);
}

EspeakEngine::~EspeakEngine() {
    std::lock_guard lock(impl_->mutex);
    for (auto& h : impl_->helpers) h->stop();
}

Audio EspeakEngine::synthesize(const TextToSpeechRequest& request) {
    const std::size_t dot = request.voice_id.find('.');
    const std::string voice =
        dot == std::string::npos ? request.voice_id : request.voice_id.substr(dot + 1);
    std::string pcm;
    const nlohmann::json reply = impl_->with_helper([&](Helper& h) {
        return h.call(
            {{"op", "synth"}, {"voice", voice}, {"speed", request.speed}, {"text", request.text}},
            &pcm);
    });
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
    const nlohmann::json reply = impl_->with_helper([](Helper& h) {
        return h.call({{"op", "voices"}}, nullptr);
    });
    return reply.value("voices", std::vector<std::string>{});
}

int EspeakEngine::helper_pid() const {
    for (const auto& h : impl_->helpers) {
        if (const pid_t pid = h->running_pid.load(); pid != 0) return pid;
    }
    return 0;
}

}  // namespace voxq
