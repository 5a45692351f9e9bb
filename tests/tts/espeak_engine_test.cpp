// The espeak engine through its helper process, with the real espeak-ng.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "voxq/speech.hpp"

namespace voxq {
namespace {

TextToSpeechRequest request(const std::string& text, const std::string& voice = "espeak.en-us") {
    return TextToSpeechRequest{text, voice, 1.0, "wav"};
}

TEST(EspeakEngine, SpeaksWithPlausibleDuration) {
    EspeakEngine engine(VOXQ_ESPEAK_HELPER_PATH);
    const Audio audio = engine.synthesize(request("Hello world. This is voxq speaking."));
    EXPECT_EQ(audio.sample_rate, 22050);
    // Six words at ~175 words per minute: about two seconds, give or take.
    EXPECT_GT(audio.seconds(), 1.0);
    EXPECT_LT(audio.seconds(), 6.0);
    int peak = 0;
    for (std::int16_t s : audio.samples) peak = std::max(peak, std::abs(static_cast<int>(s)));
    EXPECT_GT(peak, 1000) << "silence";
    // Faster speech is shorter.
    TextToSpeechRequest fast = request("Hello world. This is voxq speaking.");
    fast.speed = 2.0;
    EXPECT_LT(engine.synthesize(fast).seconds(), audio.seconds() * 0.75);
}

TEST(EspeakEngine, TheHelperInheritsNothingButItsPipes) {
    // A socket this process holds (a server's listening socket, say) must not
    // stay open in the helper, where it would outlive the server.
    const int sock = ::socket(AF_INET, SOCK_STREAM, 0);  // no SOCK_CLOEXEC on purpose
    ASSERT_GE(sock, 0);
    const int file = ::open("/dev/null", O_RDONLY);  // nor on this
    ASSERT_GE(file, 0);
    EspeakEngine engine(VOXQ_ESPEAK_HELPER_PATH);
    (void)engine.synthesize(request("Hi."));
    const int pid = engine.helper_pid();
    ASSERT_GT(pid, 0);
    auto target = [](const std::filesystem::path& link) {
        std::error_code ec;
        return std::filesystem::read_symlink(link, ec).string();
    };
    const std::string own_socket = target("/proc/self/fd/" + std::to_string(sock));
    ASSERT_EQ(own_socket.rfind("socket:", 0), 0U) << own_socket;
    // Beyond stdin, stdout and stderr (which the helper points at /dev/null itself).
    std::vector<std::string> open_in_helper;
    for (const auto& fd :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
        if (std::stoi(fd.path().filename().string()) > 2)
            open_in_helper.push_back(target(fd.path()));
    }
    EXPECT_EQ(std::count(open_in_helper.begin(), open_in_helper.end(), own_socket), 0)
        << "the helper holds this process's socket";
    EXPECT_EQ(std::count(open_in_helper.begin(), open_in_helper.end(), "/dev/null"), 0)
        << "the helper holds this process's file";
    ::close(sock);
    ::close(file);
}

TEST(EspeakEngine, UnknownVoiceIsAPermanentError) {
    EspeakEngine engine(VOXQ_ESPEAK_HELPER_PATH);
    try {
        (void)engine.synthesize(request("Hi", "espeak.no-such-voice"));
        FAIL() << "synthesized with a voice that does not exist";
    } catch (const SpeechError& e) {
        EXPECT_TRUE(e.permanent());
        EXPECT_NE(std::string(e.what()).find("no-such-voice"), std::string::npos) << e.what();
    }
    // The engine still works, in the voice asked for.
    EXPECT_GT(engine.synthesize(request("Bonjour", "espeak.fr")).seconds(), 0.2);
}

TEST(EspeakEngine, EveryListedVoiceSynthesizes) {
    EspeakEngine engine(VOXQ_ESPEAK_HELPER_PATH);
    const auto voices = engine.voices();
    EXPECT_GT(voices.size(), 100U);
    // The short forms people type, and the language tags espeak lists (whose
    // voice files have other names: en-gb is gmw/en, fr-fr is roa/fr).
    for (const char* id : {"en", "fr", "de", "en-us", "en-gb", "fr-fr", "chr-us-qaaa-x-west"}) {
        EXPECT_NE(std::find(voices.begin(), voices.end(), id), voices.end()) << id;
    }
    for (const std::string& voice : voices) {
        try {
            EXPECT_GT(engine.synthesize(request("one two", "espeak." + voice)).seconds(), 0.1)
                << voice;
        } catch (const SpeechError& e) {
            ADD_FAILURE() << "espeak." << voice << " is listed but fails: " << e.what();
        }
    }
    // A listed language tag is spoken by its own voice file, not by the voice
    // selected before it (a failed selection keeps the previous voice): en-gb
    // sounds like en, not like the French selected just before.
    (void)engine.synthesize(request("Bonjour", "espeak.fr"));
    const Audio gb = engine.synthesize(request("Good morning", "espeak.en-gb"));
    const Audio en = engine.synthesize(request("Good morning", "espeak.en"));
    EXPECT_NEAR(gb.seconds(), en.seconds(), 0.02);
    // A variant of a language tag works too.
    EXPECT_GT(engine.synthesize(request("one two", "espeak.fr-fr+f3")).seconds(), 0.1);
}

TEST(EspeakEngine, AVoiceUsedAgainSpeaksAsBeforeWhateverCameBetween) {
    // One helper, so every request goes to the one that keeps its voice loaded.
    // espeak's output varies by a few samples from call to call, so voices are
    // told apart by how long they take to read out a number in their language.
    EspeakEngine engine(VOXQ_ESPEAK_HELPER_PATH, 1);
    const auto seconds = [&](const char* voice) {
        return engine.synthesize(request("1234567 and 891", voice)).seconds();
    };
    const double english = seconds("espeak.en-us");
    const double french = seconds("espeak.fr");
    const double german = seconds("espeak.de");
    ASSERT_GT(std::abs(french - english), 0.1 * english);
    ASSERT_GT(std::abs(german - english), 0.1 * english);
    ASSERT_GT(std::abs(german - french), 0.1 * english);
    const double same = 0.01 * english;
    EXPECT_NEAR(seconds("espeak.en-us"), english, same) << "the same voice twice";
    EXPECT_NEAR(seconds("espeak.fr"), french, same) << "after English";
    EXPECT_NEAR(seconds("espeak.en-us"), english, same) << "after French";
    EXPECT_NEAR(seconds("espeak.de"), german, same) << "after English";
    EXPECT_THROW((void)seconds("espeak.no-such-voice"), SpeechError);
    EXPECT_NEAR(seconds("espeak.de"), german, same) << "after a voice that failed to load";
    EXPECT_NEAR(seconds("espeak.en-us"), english, same) << "after German";
}

TEST(EspeakEngine, AKilledHelperFailsTheRequestInFlightAndIsRestarted) {
    EspeakEngine engine(VOXQ_ESPEAK_HELPER_PATH);
    (void)engine.synthesize(request("warm up"));
    const int pid = engine.helper_pid();
    ASSERT_GT(pid, 0);
    // A long text, and the helper killed while it synthesizes.
    std::string text;
    for (int i = 0; i < 3000; ++i) text += "The quick brown fox jumps over the lazy dog. ";
    std::thread killer([pid] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        kill(pid, SIGKILL);
    });
    bool failed_transiently = false;
    try {
        (void)engine.synthesize(request(text));
    } catch (const SpeechError& e) {
        failed_transiently = !e.permanent();
    }
    killer.join();
    EXPECT_TRUE(failed_transiently) << "the kill came too late or was not reported as transient";
    EXPECT_GT(engine.synthesize(request("back again")).seconds(), 0.3);
    EXPECT_NE(engine.helper_pid(), pid);
}

TEST(Wav, HeaderDescribesTheSamples) {
    Audio audio{22050, std::vector<std::int16_t>(22050, 1000)};
    const std::string wav = encode_wav(audio);
    ASSERT_EQ(wav.size(), 44U + 44100U);
    EXPECT_EQ(wav.substr(0, 4), "RIFF");
    EXPECT_EQ(wav.substr(8, 8), "WAVEfmt ");
    EXPECT_EQ(wav.substr(36, 4), "data");
    auto u32 = [&](std::size_t at) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(wav[at])) |
               static_cast<std::uint32_t>(static_cast<unsigned char>(wav[at + 1])) << 8 |
               static_cast<std::uint32_t>(static_cast<unsigned char>(wav[at + 2])) << 16 |
               static_cast<std::uint32_t>(static_cast<unsigned char>(wav[at + 3])) << 24;
    };
    EXPECT_EQ(u32(4), 36U + 44100U);
    EXPECT_EQ(u32(24), 22050U);
    EXPECT_EQ(u32(40), 44100U);
}

}  // namespace
}  // namespace voxq
