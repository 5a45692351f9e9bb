// File: voxq/speech.hpp
//
// Speech synthesis. An engine turns a TextToSpeechRequest into audio; errors say
// whether trying again can help (SpeechError::permanent(), voxq/errors.hpp).
//
// espeak-ng is GPL-3+ and keeps process-global state, so it never runs inside
// libvoxq: EspeakEngine talks to the `voxq-espeak` helper program over a pipe,
// keeps it warm between requests, and restarts it if it dies (the request in
// flight then fails as a transient error).
//
// The speech engines a worker can use, chosen by the `engine.` prefix of a
// voice_id (SPEC §6):
//   espeak   espeak-ng in helper processes; always there.
//   <name>   one per VOXQ_ENGINE_<NAME>_URL, of the kind VOXQ_ENGINE_<NAME>_KIND
//            names (default and today the only one: openai, an OpenAI-compatible
//            endpoint such as Kokoro-FastAPI), e.g.
//            VOXQ_ENGINE_KOKORO_URL=http://127.0.0.1:8880/v1
//
// Per engine (NAME upper-case): _URL, _KIND, _API_KEY (sent as a bearer token, never
// logged), _MODEL, _CONCURRENCY (calls at once per worker process; speech
// servers throttle), _MAX_CHARS (longer texts are split at sentence boundaries
// and the audio joined; OpenAI-compatible default 4096), _TIMEOUT (seconds),
// _RPM and _CPM (requests and characters per minute, shared by every worker on
// one database: see SpeechEngines::set_admission).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "voxq/audio.hpp"
#include "voxq/config.hpp"
#include "voxq/errors.hpp"
#include "voxq/log.hpp"
#include "voxq/task.hpp"

namespace voxq {

// Thread-safety: synthesize() and voices() may be called from many threads.
class SpeechEngine {
  public:
    virtual ~SpeechEngine() = default;
    // `request.voice_id` is "engine.voice"; the engine reads the part after the dot.
    virtual Audio synthesize(const TextToSpeechRequest& request) = 0;
    virtual std::vector<std::string> voices() = 0;
};

class EspeakEngine final : public SpeechEngine {
  public:
    // `helper`: path of the voxq-espeak program; empty = $VOXQ_ESPEAK_HELPER, else
    // voxq-espeak next to the running program. `processes`: helpers kept warm, so
    // that many syntheses run in parallel (each helper starts on first use).
    // `logger` hears of helpers that die and restart (null = default_logger()).
    explicit EspeakEngine(std::string helper = "", int processes = 1,
                          std::shared_ptr<Logger> logger = nullptr);
    ~EspeakEngine() override;
    EspeakEngine(const EspeakEngine&) = delete;
    EspeakEngine& operator=(const EspeakEngine&) = delete;

    Audio synthesize(const TextToSpeechRequest& request) override;
    std::vector<std::string> voices() override;
    // A running helper's process id (0 if none): for tests that kill it.
    [[nodiscard]] int helper_pid() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

struct EngineSettings {
    std::string name;  // as in voice ids: "kokoro"
    std::string url;   // base URL, e.g. http://127.0.0.1:8880/v1
    std::string api_key;
    std::string model;             // default: "kokoro" for kokoro, else "tts-1"
    int concurrency = 4;           // calls at once per process
    std::size_t max_chars = 4096;  // per call; 0 = no limit
    double timeout = 120;          // seconds per call
    RateLimit rate_limit;          // _RPM, _CPM
};

// POST {url}/audio/speech {model, input, voice, response_format: "wav", speed};
// voices from GET {url}/audio/voices when the server has it (Kokoro-FastAPI).
// A voice the server does not list, and 400/404/422 answers, are permanent
// errors; connection errors, timeouts, 408/429/5xx are transient.
class OpenAiSpeechEngine final : public SpeechEngine {
  public:
    explicit OpenAiSpeechEngine(EngineSettings settings);
    ~OpenAiSpeechEngine() override;
    OpenAiSpeechEngine(const OpenAiSpeechEngine&) = delete;
    OpenAiSpeechEngine& operator=(const OpenAiSpeechEngine&) = delete;

    Audio synthesize(const TextToSpeechRequest& request) override;
    // The server's voices (cached for a minute); empty if it does not list them.
    std::vector<std::string> voices() override;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Splits `text` into pieces of at most `max_bytes` bytes, at sentence ends when
// it can, else at spaces, else at UTF-8 character boundaries. Pieces keep all
// the text but the whitespace at the cuts.
[[nodiscard]] std::vector<std::string> split_text(const std::string& text, std::size_t max_bytes);

// The engines of one worker process, as one SpeechEngine: synthesize() routes by
// voice_id, holds each engine to its concurrency cap, and splits long texts.
// Synthesized speech kept on disk (SPEC §6), so a retried delivery or a
// repeated phrase does not pay for synthesis again. One file per request under
// `dir` (named by the SHA-256 of its key, which the file repeats and which is
// checked on every read); written to a temporary file and renamed, so every
// process on the machine may share the directory. Past `max_bytes` the least
// recently used files go. A file that does not read back whole and exact is a
// miss (and is removed), never an error. Thread-safe.
class SpeechCache {
  public:
    static constexpr std::uint64_t kDefaultMaxBytes = 1ULL << 30;

    SpeechCache(std::string dir, std::uint64_t max_bytes);

    // VOXQ_SPEECH_CACHE_DIR (unset: no cache, returns null) and
    // VOXQ_SPEECH_CACHE_MAX_BYTES (default 1 GiB). Throws ConfigError.
    static std::shared_ptr<SpeechCache> from_env();

    [[nodiscard]] std::optional<Audio> find(const std::string& key);
    // Best effort: a full disk or a read-only directory only means no caching.
    void store(const std::string& key, const Audio& audio);

    // Hits and misses of every cache in this process (for /metrics).
    [[nodiscard]] static std::int64_t hits() noexcept;
    [[nodiscard]] static std::int64_t misses() noexcept;

  private:
    void evict();
    std::string dir_;
    std::uint64_t max_bytes_;
    std::mutex mutex_;
    std::uint64_t written_since_scan_ = 0;  // guarded by mutex_
};

class SpeechEngines final : public SpeechEngine {
  public:
    SpeechEngines();
    ~SpeechEngines() override;
    SpeechEngines(const SpeechEngines&) = delete;
    SpeechEngines& operator=(const SpeechEngines&) = delete;

    // espeak (helper processes = VOXQ_ENGINE_ESPEAK_CONCURRENCY, default the
    // number of cores) plus every VOXQ_ENGINE_<NAME>_URL in `env`. Throws
    // ConfigError naming the variable for a bad value.
    static std::shared_ptr<SpeechEngines> from_map(const std::map<std::string, std::string>& env,
                                                   const std::string& espeak_helper = "",
                                                   std::shared_ptr<Logger> logger = nullptr);
    static std::shared_ptr<SpeechEngines> from_env(const std::string& espeak_helper = "",
                                                   std::shared_ptr<Logger> logger = nullptr);

    // Registers (or replaces) an engine. `max_chars` 0 = no splitting.
    // `identity` goes into the cache key of its speech: what, besides the voice,
    // the text and the speed, changes the audio (the model, the server).
    void add(const std::string& name, std::shared_ptr<SpeechEngine> engine, int concurrency,
             std::size_t max_chars = 0, const std::string& identity = "",
             RateLimit rate_limit = {});
    // Asked before every call to an engine with a rate limit (after the cache
    // missed, before the concurrency cap), with the engine's name, its limit and
    // the characters of the call: it returns once the call may go, or throws to
    // abandon it. A worker sets one that draws on the budget in its store and
    // waits (Worker::start); without one, limits are not enforced.
    using Admission = std::function<void(const std::string& engine, const RateLimit& limit,
                                         std::int64_t characters)>;
    void set_admission(Admission admission);
    [[nodiscard]] RateLimit rate_limit(const std::string& name) const;
    // Serve identical requests from `cache` (null: none). A hit skips the engine
    // and its concurrency cap.
    void set_cache(std::shared_ptr<SpeechCache> cache);
    [[nodiscard]] std::shared_ptr<SpeechEngine> engine(const std::string& name) const;
    // "engine 'x' is not configured (set VOXQ_ENGINE_X_URL ...)".
    [[nodiscard]] static std::string not_configured(const std::string& name);
    [[nodiscard]] std::vector<std::string> names() const;

    // Throws SpeechError: permanent for an engine that is not configured (the
    // message names the variable to set), else whatever the engine throws.
    Audio synthesize(const TextToSpeechRequest& request) override;
    // Every engine's voices as "engine.voice".
    std::vector<std::string> voices() override;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace voxq
