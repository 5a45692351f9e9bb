// An OpenAI-compatible speech endpoint over libcurl (Kokoro-FastAPI, OpenAI,
// and servers like them). The URL is the operator's own configuration, so the
// webhook address policy does not apply: speech servers usually live on
// loopback or a private network.
#include <chrono>
#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>

#include "util/curl.hpp"
#include "util/text.hpp"
#include "voxq/speech.hpp"

namespace voxq {

namespace {

constexpr std::size_t kMaxAudioBytes = std::size_t{256} << 20;  // ~90 min at 24 kHz
constexpr double kVoicesTtl = 60;                               // seconds

struct Response {
    long status = 0;
    std::string body;
};

std::size_t collect(char* data, std::size_t size, std::size_t n, void* user) {
    // A C callback: nothing may be thrown through libcurl (0 aborts the transfer).
    try {
        auto* body = static_cast<std::string*>(user);
        if (body->size() + size * n > kMaxAudioBytes) return 0;
        body->append(data, size * n);
        return size * n;
    } catch (...) {
        return 0;
    }
}

// The server's error message, short and on one line, for last_error.
std::string server_message(const std::string& body) {
    std::string message;
    const auto json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_object()) {
        // FastAPI: {"detail": "..."}; OpenAI: {"error": {"message": "..."}}.
        for (const char* key : {"detail", "error"}) {
            const auto it = json.find(key);
            if (it == json.end() || !message.empty()) continue;
            if (it->is_string()) message = it->get<std::string>();
            const auto inner = it->is_object() ? it->find("message") : it->end();
            if (it->is_object() && inner != it->end() && inner->is_string())
                message = inner->get<std::string>();
        }
    }
    if (message.empty()) message = body.substr(0, 800);
    for (char& c : message) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    // Cut by characters, never inside one: the message is stored and served as JSON.
    return truncate_utf8(message, 200);
}

}  // namespace

struct OpenAiSpeechEngine::Impl {
    EngineSettings settings;
    std::mutex mutex;
    std::vector<std::string> voices;  // guarded by mutex
    std::chrono::steady_clock::time_point voices_at;
    bool voices_known = false;
    mutable CurlPool connections;  // kept-alive connections to the speech server

    Response call(const std::string& path, const std::string* json_body) const {
        const CurlPool::Lease curl = connections.take();
        if (curl.get() == nullptr)
            throw SpeechError(settings.name + ": curl_easy_init failed", false);
        CURL* c = curl.get();
        curl_slist* raw = nullptr;
        raw = curl_slist_append(raw, "Content-Type: application/json");
        raw = curl_slist_append(raw, "Expect:");
        if (!settings.api_key.empty())
            raw = curl_slist_append(raw, ("Authorization: Bearer " + settings.api_key).c_str());
        const CurlHeaders headers(raw);
        const std::string url = settings.url + path;
        Response response;
        char error[CURL_ERROR_SIZE] = {};
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                         static_cast<long>(std::lround(settings.timeout * 1000)));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
        if (json_body != nullptr) {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body->data());
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(json_body->size()));
        }
        const CURLcode rc = curl_easy_perform(c);
        if (rc != CURLE_OK) {
            throw SpeechError(settings.name + ": " + settings.url + " not reached: " +
                                  (error[0] != '\0' ? error : curl_easy_strerror(rc)),
                              false);
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
        return response;
    }
};

OpenAiSpeechEngine::OpenAiSpeechEngine(EngineSettings settings) : impl_(std::make_unique<Impl>()) {
    impl_->settings = std::move(settings);
}

OpenAiSpeechEngine::~OpenAiSpeechEngine() = default;

std::vector<std::string> OpenAiSpeechEngine::voices() {
    {
        std::lock_guard lock(impl_->mutex);
        if (impl_->voices_known && std::chrono::steady_clock::now() - impl_->voices_at <
                                       std::chrono::duration<double>(kVoicesTtl))
            return impl_->voices;
    }
    const Response r = impl_->call("/audio/voices", nullptr);
    std::vector<std::string> list;
    if (r.status >= 200 && r.status < 300) {
        const auto json = nlohmann::json::parse(r.body, nullptr, false);
        if (json.is_object() && json.contains("voices") && json["voices"].is_array()) {
            // Current Kokoro-FastAPI: [{"id": ..., "name": ...}]; older: ["af_heart", ...].
            for (const auto& v : json["voices"]) {
                if (v.is_string()) list.push_back(v.get<std::string>());
                if (v.is_object() && v.contains("id") && v["id"].is_string())
                    list.push_back(v["id"].get<std::string>());
            }
        }
    } else if (r.status >= 500 || r.status == 429) {
        throw SpeechError(
            impl_->settings.name + ": HTTP " + std::to_string(r.status) + " listing voices", false);
    }
    // A server without a voice list (OpenAI itself) answers 404: voices are then
    // checked by the server on each call.
    std::lock_guard lock(impl_->mutex);
    impl_->voices = list;
    impl_->voices_at = std::chrono::steady_clock::now();
    impl_->voices_known = true;
    return list;
}

Audio OpenAiSpeechEngine::synthesize(const TextToSpeechRequest& request) {
    const EngineSettings& s = impl_->settings;
    const std::size_t dot = request.voice_id.find('.');
    const std::string voice =
        dot == std::string::npos ? request.voice_id : request.voice_id.substr(dot + 1);
    const std::vector<std::string> known = voices();
    if (!known.empty() && std::find(known.begin(), known.end(), voice) == known.end()) {
        throw SpeechError(s.name + " has no voice '" + voice + "' (" +
                              std::to_string(known.size()) + " voices; see voxq voices --engine " +
                              s.name + ")",
                          true);
    }
    const std::string body = nlohmann::json{
        {"model", s.model},
        {"input", request.text},
        {"voice", voice},
        {"response_format", "wav"},
        {"speed", request.speed}}.dump();
    const Response r = impl_->call("/audio/speech", &body);
    if (r.status < 200 || r.status >= 300) {
        const bool transient = r.status == 408 || r.status == 429 || r.status >= 500;
        throw SpeechError(s.name + ": HTTP " + std::to_string(r.status) + " from " + s.url +
                              "/audio/speech: " + server_message(r.body),
                          !transient);
    }
    try {
        return decode_wav(r.body);
    } catch (const SpeechError& e) {
        throw SpeechError(s.name + ": unexpected audio from " + s.url + ": " + e.what(), false);
    }
}

}  // namespace voxq
