// The engine registry: routing by voice_id, per-engine concurrency caps, and
// splitting texts longer than an engine takes in one call.
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include "util/env.hpp"
#include "voxq/speech.hpp"

namespace voxq {

namespace {

bool is_space(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

// The last position <= limit where a piece may end: after a sentence end
// followed by whitespace, else at whitespace, else before a UTF-8 lead byte.
std::size_t cut_point(const std::string& text, std::size_t from, std::size_t limit) {
    for (std::size_t i = limit; i > from; --i) {
        const char before = text[i - 1];
        if (i < text.size() && is_space(text[i]) &&
            (before == '.' || before == '!' || before == '?' || before == ';' || before == ':'))
            return i;
    }
    for (std::size_t i = limit; i > from; --i) {
        if (i < text.size() && is_space(text[i])) return i;
    }
    std::size_t i = limit;
    while (i > from && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
    if (i == from) {
        // One character longer than the bound: the piece is that whole character,
        // never part of it (found by the fuzz target).
        i = limit;
        while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;
    }
    return i;
}

// At most `limit` holders at once.
class Gate {
  public:
    explicit Gate(int limit) : free_(std::max(1, limit)) {}
    void enter() {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return free_ > 0; });
        --free_;
    }
    void leave() {
        {
            std::lock_guard lock(mutex_);
            ++free_;
        }
        changed_.notify_one();
    }

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int free_;
};

struct Entry {
    std::shared_ptr<SpeechEngine> engine;
    std::shared_ptr<Gate> gate;
    std::size_t max_chars = 0;
    std::string identity;
    RateLimit rate_limit;
};

// Characters as a speech API bills them: Unicode code points, not bytes.
std::int64_t code_points(const std::string& text) {
    return std::count_if(text.begin(), text.end(),
                         [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

// Everything that decides the audio, each part length-prefixed so no two
// requests share a key.
std::string cache_key(const std::string& identity, const TextToSpeechRequest& r) {
    std::string key;
    for (const std::string* part : {&identity, &r.voice_id, &r.text}) {
        key += std::to_string(part->size());
        key += ':';
        key += *part;
    }
    char speed[32];
    std::snprintf(speed, sizeof speed, "%.17g", r.speed);
    return key + speed;
}

std::string upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}
std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

std::vector<std::string> split_text(const std::string& text, std::size_t max_bytes) {
    std::vector<std::string> pieces;
    if (max_bytes == 0 || text.size() <= max_bytes) {
        pieces.push_back(text);
        return pieces;
    }
    std::size_t at = 0;
    while (at < text.size()) {
        while (at < text.size() && is_space(text[at])) ++at;
        if (at >= text.size()) break;
        if (text.size() - at <= max_bytes) {
            pieces.push_back(text.substr(at));
            break;
        }
        const std::size_t end = cut_point(text, at, at + max_bytes);
        std::size_t trimmed = end;
        while (trimmed > at && is_space(text[trimmed - 1])) --trimmed;
        pieces.push_back(text.substr(at, trimmed - at));
        at = end;
    }
    return pieces;
}

struct SpeechEngines::Impl {
    mutable std::mutex mutex;
    std::map<std::string, Entry> engines;        // guarded by mutex
    std::shared_ptr<SpeechCache> cache;          // guarded by mutex
    std::shared_ptr<const Admission> admission;  // guarded by mutex

    Entry find(const std::string& name) const {
        std::lock_guard lock(mutex);
        auto it = engines.find(name);
        return it == engines.end() ? Entry{} : it->second;
    }
};

SpeechEngines::SpeechEngines() : impl_(std::make_unique<Impl>()) {}
SpeechEngines::~SpeechEngines() = default;

void SpeechEngines::add(const std::string& name, std::shared_ptr<SpeechEngine> engine,
                        int concurrency, std::size_t max_chars, const std::string& identity,
                        RateLimit rate_limit) {
    std::lock_guard lock(impl_->mutex);
    impl_->engines[name] = Entry{std::move(engine), std::make_shared<Gate>(concurrency), max_chars,
                                 name + "/" + identity, rate_limit};
}

void SpeechEngines::set_admission(Admission admission) {
    std::lock_guard lock(impl_->mutex);
    impl_->admission =
        admission ? std::make_shared<const Admission>(std::move(admission)) : nullptr;
}

RateLimit SpeechEngines::rate_limit(const std::string& name) const {
    return impl_->find(name).rate_limit;
}

void SpeechEngines::set_cache(std::shared_ptr<SpeechCache> cache) {
    std::lock_guard lock(impl_->mutex);
    impl_->cache = std::move(cache);
}

std::shared_ptr<SpeechEngine> SpeechEngines::engine(const std::string& name) const {
    return impl_->find(name).engine;
}

std::vector<std::string> SpeechEngines::names() const {
    std::lock_guard lock(impl_->mutex);
    std::vector<std::string> out;
    for (const auto& [name, entry] : impl_->engines) out.push_back(name);
    return out;
}

std::string SpeechEngines::not_configured(const std::string& name) {
    return "engine '" + name + "' is not configured (set VOXQ_ENGINE_" + upper(name) +
           "_URL to an OpenAI-compatible speech server)";
}

Audio SpeechEngines::synthesize(const TextToSpeechRequest& request) {
    const std::string name = request.voice_id.substr(0, request.voice_id.find('.'));
    const Entry entry = impl_->find(name);
    if (!entry.engine) throw SpeechError(not_configured(name) + ", then resume the task", true);
    std::shared_ptr<SpeechCache> cache;
    std::shared_ptr<const Admission> admission;
    {
        std::lock_guard lock(impl_->mutex);
        cache = impl_->cache;
        if (entry.rate_limit.limited()) admission = impl_->admission;
    }
    std::string key;
    if (cache) {
        key = cache_key(entry.identity, request);
        if (std::optional<Audio> hit = cache->find(key)) return std::move(*hit);
    }
    Audio joined;
    for (const std::string& piece : split_text(request.text, entry.max_chars)) {
        TextToSpeechRequest part = request;
        part.text = piece;
        if (admission) (*admission)(name, entry.rate_limit, code_points(piece));
        entry.gate->enter();
        struct Leave {
            Gate& gate;
            ~Leave() { gate.leave(); }
        } leave{*entry.gate};
        append_audio(joined, entry.engine->synthesize(part));
    }
    if (cache) cache->store(key, joined);
    return joined;
}

std::vector<std::string> SpeechEngines::voices() {
    std::vector<std::string> out;
    for (const std::string& name : names()) {
        for (const std::string& voice : engine(name)->voices()) {
            std::string full = name;
            full += '.';
            full += voice;
            out.push_back(std::move(full));
        }
    }
    return out;
}

namespace {

// The kinds of configured engine, by VOXQ_ENGINE_<NAME>_KIND. Adding a kind of
// engine (not only OpenAI-compatible servers): a class implementing
// SpeechEngine and a row here.
struct EngineKind {
    std::string_view name;
    std::shared_ptr<SpeechEngine> (*make)(EngineSettings settings);
};
constexpr EngineKind kEngineKinds[] = {
    {"openai",
     [](EngineSettings s) -> std::shared_ptr<SpeechEngine> {
         return std::make_shared<OpenAiSpeechEngine>(std::move(s));
     }},
};

const EngineKind* find_engine_kind(std::string_view name) {
    for (const EngineKind& kind : kEngineKinds) {
        if (kind.name == name) return &kind;
    }
    return nullptr;
}

std::string engine_kind_names() {
    std::string out;
    for (const EngineKind& kind : kEngineKinds) {
        if (!out.empty()) out += ", ";
        out += kind.name;
    }
    return out;
}

// _RPM and _CPM of the engine whose variables start with `prefix`.
RateLimit read_rate_limit(const env::Reader& vars, const std::string& prefix) {
    const env::Range per_minute{0, 1e12, false, " per minute (0 = no limit)"};
    RateLimit limit;
    limit.requests_per_minute = vars.number(prefix + "RPM", per_minute).value_or(0);
    limit.characters_per_minute = vars.number(prefix + "CPM", per_minute).value_or(0);
    return limit;
}

}  // namespace

std::shared_ptr<SpeechEngines> SpeechEngines::from_map(
    const std::map<std::string, std::string>& env, const std::string& espeak_helper,
    std::shared_ptr<Logger> logger) {
    auto engines = std::make_shared<SpeechEngines>();
    const env::Reader vars(env);
    auto read_int = [&](const std::string& variable, int fallback) {
        return static_cast<int>(vars.integer(variable, 1, 1024).value_or(fallback));
    };
    const int cores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
    const int espeak_processes = read_int("VOXQ_ENGINE_ESPEAK_CONCURRENCY", cores);
    engines->add("espeak",
                 std::make_shared<EspeakEngine>(espeak_helper, espeak_processes, std::move(logger)),
                 espeak_processes, 0, "", read_rate_limit(vars, "VOXQ_ENGINE_ESPEAK_"));

    // Every engine named by a VOXQ_ENGINE_<NAME>_URL or _KIND variable.
    const std::string prefix = "VOXQ_ENGINE_";
    std::set<std::string> named;
    for (const auto& [variable, value] : env) {
        for (const std::string suffix : {"_URL", "_KIND"}) {
            if (variable.size() > prefix.size() + suffix.size() &&
                variable.compare(variable.size() - suffix.size(), suffix.size(), suffix) == 0) {
                named.insert(variable.substr(prefix.size(),
                                             variable.size() - prefix.size() - suffix.size()));
            }
        }
    }
    for (const std::string& upper_name : named) {
        const std::string p = prefix + upper_name + "_";
        EngineSettings s;
        s.name = lower(upper_name);
        if (s.name.empty() || !std::all_of(s.name.begin(), s.name.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
            }))
            throw ConfigError(p + "URL: the engine name must be letters and digits");
        if (s.name == "espeak") throw ConfigError(p + "URL: espeak is built in");
        const std::string kind_name = vars.text(p + "KIND").value_or("openai");
        const EngineKind* kind = find_engine_kind(kind_name);
        if (kind == nullptr) {
            throw ConfigError(p + "KIND: " + env::quoted(kind_name) + " is not one of " +
                              engine_kind_names());
        }
        const std::string url = vars.text(p + "URL").value_or("");
        if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
            throw ConfigError(p + "URL: " + env::quoted(url) + " is not an http(s) URL");
        s.url = url;
        while (!s.url.empty() && s.url.back() == '/') s.url.pop_back();
        s.api_key = vars.text(p + "API_KEY").value_or("");
        s.model = vars.text(p + "MODEL").value_or(s.name == "kokoro" ? "kokoro" : "tts-1");
        s.concurrency = read_int(p + "CONCURRENCY", 4);
        s.max_chars =
            static_cast<std::size_t>(vars.integer(p + "MAX_CHARS", 16, 1'000'000)
                                         .value_or(static_cast<std::int64_t>(s.max_chars)));
        s.timeout = vars.number(p + "TIMEOUT", {0, 3600, true, " seconds"}).value_or(s.timeout);
        s.rate_limit = read_rate_limit(vars, p);
        const std::string name = s.name;  // read before s is moved from
        const int cap = s.concurrency;
        const std::size_t max_chars = s.max_chars;
        const std::string identity = s.model + "@" + s.url;
        const RateLimit rate_limit = s.rate_limit;
        engines->add(name, kind->make(std::move(s)), cap, max_chars, identity, rate_limit);
    }
    return engines;
}

std::shared_ptr<SpeechEngines> SpeechEngines::from_env(const std::string& espeak_helper,
                                                       std::shared_ptr<Logger> logger) {
    auto engines =
        from_map(env::Reader().with_prefix("VOXQ_ENGINE_"), espeak_helper, std::move(logger));
    engines->set_cache(SpeechCache::from_env());
    return engines;
}

}  // namespace voxq
