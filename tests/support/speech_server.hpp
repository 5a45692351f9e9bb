// A local OpenAI-compatible speech server on 127.0.0.1, shaped like
// Kokoro-FastAPI: POST /v1/audio/speech makes real audio with espeak-ng (voice
// af_* -> en-us, ff_* -> fr), GET /v1/audio/voices lists its voices. It records
// what it was asked, and can be told to fail.
#pragma once

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "voxq/speech.hpp"

namespace voxq::test {

class SpeechServer {
  public:
    struct Call {
        nlohmann::json body;
        std::string authorization;
    };

    explicit SpeechServer(bool list_voices = true) : espeak_(VOXQ_ESPEAK_HELPER_PATH, 2) {
        if (list_voices) {
            server_.Get("/v1/audio/voices", [](const httplib::Request&, httplib::Response& res) {
                res.set_content(R"({"voices":[{"id":"af_heart","name":"af_heart"},)"
                                R"({"id":"ff_siwis","name":"ff_siwis"}]})",
                                "application/json");
            });
        }
        server_.Post(
            "/v1/audio/speech", [this](const httplib::Request& req, httplib::Response& res) {
                Call call{nlohmann::json::parse(req.body, nullptr, false),
                          req.get_header_value("Authorization")};
                int status = 200;
                std::string error_body;
                {
                    std::lock_guard lock(mutex_);
                    calls_.push_back(call);
                    const auto now = std::chrono::steady_clock::now();
                    call_times_.push_back(now);
                    if (window_limit_ > 0 && over_window_limit(now)) {
                        ++throttled_;
                        fail_with_.insert(fail_with_.begin(), {429, R"({"error":"rate limited"})"});
                    }
                    if (!fail_with_.empty()) {
                        status = fail_with_.front().first;
                        error_body = fail_with_.front().second;
                        fail_with_.erase(fail_with_.begin());
                    }
                }
                if (status != 200) {
                    res.status = status;
                    res.set_content(error_body, "application/json");
                    return;
                }
                const std::string voice = call.body.value("voice", "");
                const std::string espeak_voice =
                    voice.rfind("ff_", 0) == 0 ? "espeak.fr" : "espeak.en-us";
                try {
                    const Audio audio = espeak_.synthesize(
                        TextToSpeechRequest{call.body.value("input", ""), espeak_voice,
                                            call.body.value("speed", 1.0), "wav"});
                    res.set_content(encode_wav(audio), "audio/wav");
                } catch (const SpeechError& e) {
                    res.status = 500;
                    res.set_content(e.what(), "text/plain");
                }
            });
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~SpeechServer() {
        server_.stop();
        thread_.join();
    }
    SpeechServer(const SpeechServer&) = delete;
    SpeechServer& operator=(const SpeechServer&) = delete;

    [[nodiscard]] std::string base_url() const {
        return "http://127.0.0.1:" + std::to_string(port_) + "/v1";
    }
    // The next speech calls answer `status` with `body`, in order.
    void fail_next(int status, const std::string& body) {
        std::lock_guard lock(mutex_);
        fail_with_.emplace_back(status, body);
    }
    [[nodiscard]] std::vector<Call> calls() const {
        std::lock_guard lock(mutex_);
        return calls_;
    }
    // Throttle as a paid API does: a call past `limit` in the trailing 10 seconds
    // is answered 429.
    void throttle_per_10s(int limit) {
        std::lock_guard lock(mutex_);
        window_limit_ = limit;
    }
    [[nodiscard]] int throttled() const {
        std::lock_guard lock(mutex_);
        return throttled_;
    }
    // The most calls that arrived within any 10 seconds.
    [[nodiscard]] int busiest_10s() const {
        std::lock_guard lock(mutex_);
        int most = 0;
        for (std::size_t i = 0; i < call_times_.size(); ++i) {
            int n = 0;
            for (std::size_t j = i; j < call_times_.size() &&
                                    call_times_[j] - call_times_[i] < std::chrono::seconds(10);
                 ++j)
                ++n;
            most = std::max(most, n);
        }
        return most;
    }

  private:
    EspeakEngine espeak_;
    httplib::Server server_;
    int port_ = 0;
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<Call> calls_;
    std::vector<std::chrono::steady_clock::time_point> call_times_;
    int window_limit_ = 0;
    int throttled_ = 0;

    // Guarded by mutex_; the call at `now` is already in call_times_.
    bool over_window_limit(std::chrono::steady_clock::time_point now) const {
        const auto in_window = std::count_if(call_times_.begin(), call_times_.end(), [&](auto t) {
            return now - t < std::chrono::seconds(10);
        });
        return in_window > window_limit_;
    }
    std::vector<std::pair<int, std::string>> fail_with_;
};

}  // namespace voxq::test
