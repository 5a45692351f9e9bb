// The engine registry (routing, caps, splitting, configuration) and the
// OpenAI-compatible engine against a local Kokoro-shaped server.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/processes.hpp"
#include "support/speech_server.hpp"
#include "support/temp_dir.hpp"
#include "voxq/speech.hpp"

namespace voxq {
namespace {

std::string joined(const std::vector<std::string>& pieces) {
    std::string out;
    for (const auto& p : pieces) out += (out.empty() ? "" : " ") + p;
    return out;
}

TEST(SplitText, ShortTextIsOnePiece) {
    EXPECT_EQ(split_text("Hello there. Bye.", 100), std::vector<std::string>{"Hello there. Bye."});
    EXPECT_EQ(split_text("Hello there. Bye.", 0), std::vector<std::string>{"Hello there. Bye."});
}

TEST(SplitText, CutsAtSentenceEndsWithinTheLimit) {
    std::string text;
    for (int i = 0; i < 40; ++i) text += "Sentence number " + std::to_string(i) + " is here. ";
    text.pop_back();
    const auto pieces = split_text(text, 100);
    ASSERT_GT(pieces.size(), 8U);
    for (const auto& p : pieces) {
        EXPECT_LE(p.size(), 100U) << p;
        EXPECT_EQ(p.back(), '.') << "cut inside a sentence: " << p;
    }
    EXPECT_EQ(joined(pieces), text) << "text lost or changed";
}

TEST(SplitText, NeverCutsInsideACharacterLongerThanTheBound) {
    // A bound below a character's size gives whole characters (found by fuzzing:
    // pieces of invalid UTF-8 went to the engine).
    EXPECT_EQ(split_text("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x94\x8A", 1),
              (std::vector<std::string>{"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x94\x8A"}));
    EXPECT_EQ(split_text("a\xE2\x82\xAC", 2), (std::vector<std::string>{"a", "\xE2\x82\xAC"}));
}

TEST(SplitText, FallsBackToSpacesThenCharacterBoundaries) {
    std::string words;
    for (int i = 0; i < 50; ++i) words += "word" + std::to_string(i) + " ";
    words.pop_back();
    auto pieces = split_text(words, 30);
    for (const auto& p : pieces) {
        EXPECT_LE(p.size(), 30U);
        EXPECT_NE(p.back(), ' ');
    }
    EXPECT_EQ(joined(pieces), words);

    std::string accents;  // 2-byte UTF-8 characters, no spaces at all
    for (int i = 0; i < 100; ++i) accents += "\xC3\xA9";
    pieces = split_text(accents, 31);
    std::string back;
    for (const auto& p : pieces) {
        EXPECT_LE(p.size(), 31U);
        EXPECT_EQ(p.size() % 2, 0U) << "a character was cut in two";
        back += p;
    }
    EXPECT_EQ(back, accents);
}

TEST(SpeechEngines, UnconfiguredEngineIsPermanentAndSaysWhatToSet) {
    const auto engines = SpeechEngines::from_map({}, VOXQ_ESPEAK_HELPER_PATH);
    EXPECT_EQ(engines->names(), std::vector<std::string>{"espeak"});
    try {
        (void)engines->synthesize(TextToSpeechRequest{"Hi", "kokoro.af_heart", 1.0, "wav"});
        FAIL() << "synthesized with an engine that is not configured";
    } catch (const SpeechError& e) {
        EXPECT_TRUE(e.permanent());
        EXPECT_NE(std::string(e.what()).find("set VOXQ_ENGINE_KOKORO_URL"), std::string::npos)
            << e.what();
    }
}

TEST(SpeechEngines, BadSettingsNameTheVariable) {
    const std::vector<std::pair<std::map<std::string, std::string>, std::string>> cases = {
        {{{"VOXQ_ENGINE_KOKORO_URL", "ftp://x"}},
         "VOXQ_ENGINE_KOKORO_URL: 'ftp://x' is not an http(s) URL"},
        {{{"VOXQ_ENGINE_KOKORO_URL", "http://x"}, {"VOXQ_ENGINE_KOKORO_CONCURRENCY", "0"}},
         "VOXQ_ENGINE_KOKORO_CONCURRENCY: '0' must be 1..1024"},
        {{{"VOXQ_ENGINE_KOKORO_URL", "http://x"}, {"VOXQ_ENGINE_KOKORO_MAX_CHARS", "abc"}},
         "VOXQ_ENGINE_KOKORO_MAX_CHARS: 'abc' is not an integer"},
        {{{"VOXQ_ENGINE_KOKORO_URL", "http://x"}, {"VOXQ_ENGINE_KOKORO_TIMEOUT", "-1"}},
         "VOXQ_ENGINE_KOKORO_TIMEOUT: '-1' must be > 0 and <= 3600 seconds"},
        {{{"VOXQ_ENGINE_ESPEAK_CONCURRENCY", "many"}},
         "VOXQ_ENGINE_ESPEAK_CONCURRENCY: 'many' is not an integer"},
        {{{"VOXQ_ENGINE_ESPEAK_URL", "http://x"}}, "VOXQ_ENGINE_ESPEAK_URL: espeak is built in"},
        {{{"VOXQ_ENGINE_K-O_URL", "http://x"}},
         "VOXQ_ENGINE_K-O_URL: the engine name must be letters and digits"},
        {{{"VOXQ_ENGINE_KOKORO_URL", "http://x"}, {"VOXQ_ENGINE_KOKORO_KIND", "grpc"}},
         "VOXQ_ENGINE_KOKORO_KIND: 'grpc' is not one of openai"},
        {{{"VOXQ_ENGINE_KOKORO_KIND", "openai"}},
         "VOXQ_ENGINE_KOKORO_URL: '' is not an http(s) URL"},
        {{{"VOXQ_ENGINE_KOKORO_URL", "http://x"}, {"VOXQ_ENGINE_KOKORO_RPM", "-5"}},
         "VOXQ_ENGINE_KOKORO_RPM: '-5' must be 0..1000000000000 per minute (0 = no limit)"},
        {{{"VOXQ_ENGINE_KOKORO_URL", "http://x"}, {"VOXQ_ENGINE_KOKORO_CPM", "nan"}},
         "VOXQ_ENGINE_KOKORO_CPM: 'nan' is not a number"},
        {{{"VOXQ_ENGINE_ESPEAK_RPM", "lots"}}, "VOXQ_ENGINE_ESPEAK_RPM: 'lots' is not a number"},
    };
    for (const auto& [env, message] : cases) {
        try {
            (void)SpeechEngines::from_map(env, VOXQ_ESPEAK_HELPER_PATH);
            ADD_FAILURE() << "accepted: " << message;
        } catch (const ConfigError& e) {
            EXPECT_EQ(std::string(e.what()), message);
        }
    }
}

// Counts how many calls run at once.
class CountingEngine final : public SpeechEngine {
  public:
    Audio synthesize(const TextToSpeechRequest& request) override {
        const int now = ++running;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        --running;
        ++calls;
        return Audio{8000, std::vector<std::int16_t>(request.text.size(), 1)};
    }
    std::vector<std::string> voices() override { return {"one"}; }
    std::atomic<int> running = 0;
    std::atomic<int> most = 0;
    std::atomic<int> calls = 0;
};

TEST(SpeechEngines, HoldEachEngineToItsConcurrencyCap) {
    SpeechEngines engines;
    auto counting = std::make_shared<CountingEngine>();
    engines.add("slow", counting, 2);
    std::vector<std::thread> threads;
    threads.reserve(8);
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([&] {
            for (int k = 0; k < 3; ++k)
                (void)engines.synthesize(TextToSpeechRequest{"abc", "slow.one", 1.0, "wav"});
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(counting->calls.load(), 24);
    EXPECT_EQ(counting->most.load(), 2) << "the cap was not held, or never reached";
    EXPECT_EQ(engines.voices(), std::vector<std::string>{"slow.one"});
}

// The admission hook sees each call of a rate-limited engine, after the cache
// and per piece of a split text, with the characters it bills; other engines
// and cache hits never reach it. A throwing admission stops the call.
TEST(SpeechEngines, RateLimitedCallsAskTheAdmissionFirst) {
    testing::TempDir dir;
    auto limited = std::make_shared<CountingEngine>();
    auto free = std::make_shared<CountingEngine>();
    SpeechEngines engines;
    engines.add("paid", limited, 4, 14, "", RateLimit{60, 1000});
    engines.add("free", free, 4);
    engines.set_cache(std::make_shared<SpeechCache>(dir.file("cache"), 1 << 20));
    std::vector<std::pair<std::string, std::int64_t>> asked;
    engines.set_admission(
        [&](const std::string& engine, const RateLimit& limit, std::int64_t characters) {
            EXPECT_EQ(limit.requests_per_minute, 60);
            asked.emplace_back(engine, characters);
        });
    (void)engines.synthesize({"Caf\xC3\xA9 ouvert. Entrez!", "paid.one", 1.0, "wav"});
    EXPECT_EQ(asked, (std::vector<std::pair<std::string, std::int64_t>>{{"paid", 12}, {"paid", 7}}))
        << "one ask per piece, characters counted as code points";
    (void)engines.synthesize({"Caf\xC3\xA9 ouvert. Entrez!", "paid.one", 1.0, "wav"});
    (void)engines.synthesize({"No limit here.", "free.one", 1.0, "wav"});
    EXPECT_EQ(asked.size(), 2U) << "a cache hit or an engine without a limit was asked";
    EXPECT_EQ(engines.rate_limit("paid").characters_per_minute, 1000);

    engines.set_admission([](const std::string&, const RateLimit&, std::int64_t) {
        throw SpeechError("no capacity", false);
    });
    EXPECT_THROW((void)engines.synthesize({"Something new.", "paid.one", 1.0, "wav"}), SpeechError);
    EXPECT_EQ(limited->calls.load(), 2) << "a refused call reached the engine";
}

// The speech cache: identical requests synthesize once, per directory.
class SpeechCacheTest : public ::testing::Test {
  protected:
    std::shared_ptr<SpeechEngines> engines_with(const std::shared_ptr<SpeechEngine>& engine,
                                                std::uint64_t max_bytes = 1 << 20) {
        auto engines = std::make_shared<SpeechEngines>();
        engines->add("slow", engine, 4, 0, "model-a");
        engines->set_cache(std::make_shared<SpeechCache>(dir_.file("cache"), max_bytes));
        return engines;
    }
    static TextToSpeechRequest request(const std::string& text, double speed = 1.0) {
        return TextToSpeechRequest{text, "slow.one", speed, "wav"};
    }
    testing::TempDir dir_;
};

TEST_F(SpeechCacheTest, TheSameRequestAHundredTimesSynthesizesOnce) {
    auto counting = std::make_shared<CountingEngine>();
    auto engines = engines_with(counting);
    const std::int64_t hits = SpeechCache::hits();
    const Audio first = engines->synthesize(request("Your order has shipped."));
    for (int i = 0; i < 99; ++i) {
        const Audio again = engines->synthesize(request("Your order has shipped."));
        ASSERT_EQ(again.samples, first.samples);
        ASSERT_EQ(again.sample_rate, first.sample_rate);
    }
    EXPECT_EQ(counting->calls.load(), 1);
    EXPECT_EQ(SpeechCache::hits() - hits, 99);
    // Anything that changes the audio is another entry: speed, text, the engine's identity.
    (void)engines->synthesize(request("Your order has shipped.", 1.5));
    (void)engines->synthesize(request("Your order has shipped!"));
    EXPECT_EQ(counting->calls.load(), 3);
    auto other_model = std::make_shared<SpeechEngines>();
    other_model->add("slow", counting, 4, 0, "model-b");
    other_model->set_cache(std::make_shared<SpeechCache>(dir_.file("cache"), 1 << 20));
    (void)other_model->synthesize(request("Your order has shipped."));
    EXPECT_EQ(counting->calls.load(), 4);
}

TEST_F(SpeechCacheTest, AnotherProcessOnTheSameDirectoryHitsWhatOneSynthesized) {
    auto counting = std::make_shared<CountingEngine>();
    (void)engines_with(counting)->synthesize(request("Press one for sales."));
    ASSERT_EQ(counting->calls.load(), 1);
    // The child's own engine counts its calls: its exit status.
    const pid_t child = testing::spawn([this] {
        auto its_engine = std::make_shared<CountingEngine>();
        (void)engines_with(its_engine)->synthesize(request("Press one for sales."));
        std::_Exit(its_engine->calls.load() == 0 ? 0 : 3);
    });
    EXPECT_EQ(testing::wait_for(child), 0) << "the other process synthesized again";
}

TEST_F(SpeechCacheTest, EvictionKeepsTheBoundAndTheRecentlyUsed) {
    auto counting = std::make_shared<CountingEngine>();
    // Each entry holds 4,000 samples (8 KB): the bound holds about six.
    auto engines = engines_with(counting, 50'000);
    const std::string keep(4000, 'k');
    (void)engines->synthesize(request(keep));
    for (int i = 0; i < 30; ++i) {
        (void)engines->synthesize(request(std::string(3990, 'a') + std::to_string(1000 + i)));
        (void)engines->synthesize(request(keep));  // used all along: never the oldest
    }
    std::uint64_t total = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir_.file("cache"))) {
        total += f.file_size();
    }
    EXPECT_LE(total, 50'000U);
    const int calls = counting->calls.load();
    (void)engines->synthesize(request(keep));
    EXPECT_EQ(counting->calls.load(), calls) << "the entry used most recently was evicted";
}

TEST_F(SpeechCacheTest, ADamagedFileIsAMissNotAFailure) {
    auto counting = std::make_shared<CountingEngine>();
    auto engines = engines_with(counting);
    const Audio first = engines->synthesize(request("Chapter one."));
    for (const auto& f : std::filesystem::directory_iterator(dir_.file("cache"))) {
        std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
        io.seekp(static_cast<std::streamoff>(f.file_size() / 2));
        io.write("\xff\xff\xff", 3);
    }
    const Audio again = engines->synthesize(request("Chapter one."));
    EXPECT_EQ(counting->calls.load(), 2);
    EXPECT_EQ(again.samples, first.samples);
    // Truncated to nothing: a miss too.
    for (const auto& f : std::filesystem::directory_iterator(dir_.file("cache"))) {
        std::filesystem::resize_file(f.path(), 0);
    }
    (void)engines->synthesize(request("Chapter one."));
    EXPECT_EQ(counting->calls.load(), 3);
    (void)engines->synthesize(request("Chapter one."));
    EXPECT_EQ(counting->calls.load(), 3);
}

TEST_F(SpeechCacheTest, BadSettingsNameTheVariableAndUnsetMeansNoCache) {
    ::unsetenv("VOXQ_SPEECH_CACHE_DIR");
    EXPECT_EQ(SpeechCache::from_env(), nullptr);
    ::setenv("VOXQ_SPEECH_CACHE_DIR", dir_.file("c").c_str(), 1);
    for (const char* bad : {"lots", "-1", "1024", "99999999999999999999999"}) {
        ::setenv("VOXQ_SPEECH_CACHE_MAX_BYTES", bad, 1);
        try {
            (void)SpeechCache::from_env();
            ADD_FAILURE() << bad << " was taken";
        } catch (const ConfigError& e) {
            EXPECT_NE(std::string(e.what()).find("VOXQ_SPEECH_CACHE_MAX_BYTES"), std::string::npos)
                << e.what();
        }
    }
    ::unsetenv("VOXQ_SPEECH_CACHE_MAX_BYTES");
    EXPECT_NE(SpeechCache::from_env(), nullptr);
    ::unsetenv("VOXQ_SPEECH_CACHE_DIR");
}

TEST(SpeechEngines, LongTextsAreSplitAndTheAudioJoined) {
    SpeechEngines engines;
    auto counting = std::make_shared<CountingEngine>();
    engines.add("slow", counting, 1, 50);
    std::string text;
    for (int i = 0; i < 10; ++i) text += "This is sentence " + std::to_string(i) + ". ";
    const Audio audio = engines.synthesize(TextToSpeechRequest{text, "slow.one", 1.0, "wav"});
    EXPECT_GE(counting->calls.load(), 4);
    // One sample per character of every piece: nothing was dropped but spaces at cuts.
    EXPECT_GE(audio.samples.size(), text.size() - 20);
    EXPECT_EQ(audio.sample_rate, 8000);
}

class OpenAiEngine : public ::testing::Test {
  protected:
    std::shared_ptr<SpeechEngines> engines(std::map<std::string, std::string> env = {}) {
        env["VOXQ_ENGINE_KOKORO_URL"] = server_.base_url();
        return SpeechEngines::from_map(env, VOXQ_ESPEAK_HELPER_PATH);
    }
    static TextToSpeechRequest kokoro(const std::string& text,
                                      const std::string& voice = "af_heart") {
        return TextToSpeechRequest{text, "kokoro." + voice, 1.0, "wav"};
    }
    test::SpeechServer server_;
};

TEST_F(OpenAiEngine, SpeaksThroughTheServerWithItsApiShape) {
    const auto e = engines({{"VOXQ_ENGINE_KOKORO_API_KEY", "sk-test-123"}});
    const Audio audio = e->synthesize(kokoro("Hello from a speech server."));
    EXPECT_EQ(audio.sample_rate, 22050);
    EXPECT_GT(audio.seconds(), 1.0);
    const auto calls = server_.calls();
    ASSERT_EQ(calls.size(), 1U);
    EXPECT_EQ(calls[0].body["model"], "kokoro");
    EXPECT_EQ(calls[0].body["voice"], "af_heart");
    EXPECT_EQ(calls[0].body["input"], "Hello from a speech server.");
    EXPECT_EQ(calls[0].body["response_format"], "wav");
    EXPECT_EQ(calls[0].authorization, "Bearer sk-test-123");
    EXPECT_EQ(e->engine("kokoro")->voices(), (std::vector<std::string>{"af_heart", "ff_siwis"}));
}

TEST_F(OpenAiEngine, AVoiceTheServerDoesNotListIsPermanentWithoutACall) {
    try {
        (void)engines()->synthesize(kokoro("Hi", "zz_nobody"));
        FAIL() << "synthesized an unknown voice";
    } catch (const SpeechError& e) {
        EXPECT_TRUE(e.permanent());
        EXPECT_NE(std::string(e.what()).find("kokoro has no voice 'zz_nobody'"), std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(server_.calls().empty());
}

TEST_F(OpenAiEngine, ServerErrorsAreTransientAndBadRequestsPermanent) {
    const auto e = engines();
    server_.fail_next(503, R"({"detail":"model loading"})");
    server_.fail_next(429, "{}");
    server_.fail_next(422, R"({"detail":"input too long"})");
    for (int expected_permanent : {0, 0, 1}) {
        try {
            (void)e->synthesize(kokoro("Hi"));
            ADD_FAILURE() << "no error";
        } catch (const SpeechError& err) {
            EXPECT_EQ(err.permanent(), expected_permanent == 1) << err.what();
            if (expected_permanent) {
                EXPECT_NE(std::string(err.what()).find("HTTP 422"), std::string::npos);
                EXPECT_NE(std::string(err.what()).find("input too long"), std::string::npos);
            }
        }
    }
    // OpenAI's own error shape.
    server_.fail_next(400, R"({"error":{"message":"invalid model","type":"invalid_request"}})");
    try {
        (void)e->synthesize(kokoro("Hi"));
        ADD_FAILURE() << "no error";
    } catch (const SpeechError& err) {
        EXPECT_TRUE(err.permanent());
        EXPECT_NE(std::string(err.what()).find("HTTP 400"), std::string::npos) << err.what();
        EXPECT_NE(std::string(err.what()).find("invalid model"), std::string::npos) << err.what();
    }
    EXPECT_GT(e->synthesize(kokoro("Hi")).seconds(), 0.1) << "did not recover";
}

TEST_F(OpenAiEngine, LongInputIsSplitUnderTheServersLimit) {
    const auto e = engines({{"VOXQ_ENGINE_KOKORO_MAX_CHARS", "120"}});
    std::string text;
    for (int i = 0; i < 12; ++i) text += "This is sentence number " + std::to_string(i) + ". ";
    const Audio whole = e->synthesize(kokoro(text));
    const auto calls = server_.calls();
    ASSERT_GE(calls.size(), (text.size() + 119) / 120);
    std::size_t chars = 0;
    for (const auto& c : calls) {
        const std::string input = c.body["input"];
        EXPECT_LE(input.size(), 120U);
        chars += input.size();
    }
    EXPECT_GE(chars, text.size() - calls.size() * 2);
    // Twelve sentences of five words: well over ten seconds of speech, joined.
    EXPECT_GT(whole.seconds(), 10.0);
}

TEST(OpenAiEngineAlone, AServerWithoutAVoiceListStillSpeaksAndADeadOneIsTransient) {
    test::SpeechServer plain(/*list_voices=*/false);
    auto e = SpeechEngines::from_map({{"VOXQ_ENGINE_OPENAI_URL", plain.base_url()}},
                                     VOXQ_ESPEAK_HELPER_PATH);
    EXPECT_TRUE(e->engine("openai")->voices().empty());
    EXPECT_GT(e->synthesize(TextToSpeechRequest{"Hi there.", "openai.alloy", 1.0, "wav"}).seconds(),
              0.2);
    EXPECT_EQ(plain.calls().at(0).body["model"], "tts-1");

    e = SpeechEngines::from_map({{"VOXQ_ENGINE_OPENAI_URL", "http://127.0.0.1:1/v1"}},
                                VOXQ_ESPEAK_HELPER_PATH);
    try {
        (void)e->synthesize(TextToSpeechRequest{"Hi", "openai.alloy", 1.0, "wav"});
        FAIL() << "a closed port answered";
    } catch (const SpeechError& err) {
        EXPECT_FALSE(err.permanent()) << err.what();
        EXPECT_NE(std::string(err.what()).find("not reached"), std::string::npos) << err.what();
    }
}

}  // namespace
}  // namespace voxq
