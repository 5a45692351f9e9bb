// Every output format, encoded from real espeak-ng speech and decoded back by
// libsndfile: the container is right, the rate and the length are those of the
// speech, and it is not silence.
#include <gtest/gtest.h>
#include <opusfile.h>

#include <cstring>
#include <memory>

#include "support/audio.hpp"
#include "voxq/audio_format.hpp"
#include "voxq/speech.hpp"

namespace voxq {
namespace {

const Audio& speech() {
    static const Audio audio = [] {
        EspeakEngine engine(VOXQ_ESPEAK_HELPER_PATH);
        return engine.synthesize(TextToSpeechRequest{
            "The quick brown fox jumps over the lazy dog, twice.", "espeak.en-us", 1.0, "wav"});
    }();
    return audio;
}

struct FormatCase {
    std::string format;
    std::string content_type;
    int major_format;
    double tolerance;  // seconds: codecs pad to whole frames
};

void PrintTo(const FormatCase& c, std::ostream* os) {
    *os << c.format;
}

class Encoders : public ::testing::TestWithParam<FormatCase> {};

TEST_P(Encoders, DecodesBackToTheSameSpeech) {
    const FormatCase& c = GetParam();
    const EncodedAudio encoded = encode_audio(speech(), c.format);
    EXPECT_EQ(encoded.content_type, c.content_type);
    const test::DecodedAudio decoded = test::decode_audio(encoded.bytes);
    ASSERT_TRUE(decoded.ok) << c.format << ": " << decoded.error;
    EXPECT_EQ(decoded.major_format, c.major_format);
    EXPECT_EQ(decoded.channels, 1);
    EXPECT_NEAR(decoded.seconds(), speech().seconds(), c.tolerance) << c.format;
    EXPECT_GT(decoded.peak, 1000) << c.format << " decoded to silence";
    if (c.format != "wav" && c.format != "flac") {
        EXPECT_LT(encoded.bytes.size(), speech().samples.size()) << "lossy codec did not compress";
    }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, Encoders,
                         ::testing::Values(FormatCase{"wav", "audio/wav", SF_FORMAT_WAV, 0.0},
                                           FormatCase{"flac", "audio/flac", SF_FORMAT_FLAC, 0.0},
                                           FormatCase{"mp3", "audio/mpeg", SF_FORMAT_MPEG, 0.1},
                                           FormatCase{"opus", "audio/ogg; codecs=opus",
                                                      SF_FORMAT_OGG, 0.1}),
                         [](const auto& param_info) { return param_info.param.format; });

TEST(Encoders, PcmIsTheRawSamples) {
    const EncodedAudio pcm = encode_audio(speech(), "pcm");
    // Labelled with what the bytes are: little-endian, its rate and channels
    // (audio/L16 would claim big-endian, RFC 2586).
    EXPECT_EQ(pcm.content_type, "audio/pcm;rate=22050;channels=1;format=s16le");
    ASSERT_EQ(pcm.bytes.size(), speech().samples.size() * 2);
    EXPECT_EQ(std::memcmp(pcm.bytes.data(), speech().samples.data(), pcm.bytes.size()), 0);
}

// The serial number of an Ogg stream's first page (RFC 3533: bytes 14..17).
std::uint32_t ogg_serial(const std::string& ogg) {
    std::uint32_t serial = 0;
    std::memcpy(&serial, ogg.data() + 14, sizeof serial);
    return serial;
}

TEST(Encoders, OpusStreamsHaveRandomSerialsAndChainCleanly) {
    const std::string a = encode_audio(speech(), "opus").bytes;
    const std::string b = encode_audio(speech(), "opus").bytes;
    ASSERT_EQ(a.substr(0, 4), "OggS");
    EXPECT_NE(ogg_serial(a), ogg_serial(b)) << "two streams share a serial number";
    // libopusfile reads the two joined end to end as one chained stream of two
    // links, every sample of both, without an error.
    const std::string chained = a + b;
    int error = 0;
    std::unique_ptr<OggOpusFile, decltype(&op_free)> file(
        op_open_memory(reinterpret_cast<const unsigned char*>(chained.data()), chained.size(),
                       &error),
        &op_free);
    ASSERT_TRUE(file) << "op_open_memory: " << error;
    EXPECT_EQ(op_link_count(file.get()), 2);
    std::vector<opus_int16> pcm(5760);
    long long decoded = 0;
    for (;;) {
        const int n = op_read(file.get(), pcm.data(), static_cast<int>(pcm.size()), nullptr);
        ASSERT_GE(n, 0) << "decoding the chained stream failed: " << n;
        if (n == 0) break;
        decoded += n;
    }
    // Opus decodes at 48 kHz: two copies of the speech, to within a frame.
    const double expected = 2.0 * speech().seconds() * 48000;
    EXPECT_NEAR(static_cast<double>(decoded), expected, 960);
}

TEST(Encoders, FlacIsLossless) {
    // libsndfile reads the FLAC (and the WAV) back sample for sample.
    const std::string flac = encode_audio(speech(), "flac").bytes;
    EXPECT_EQ(test::decode_audio(flac).samples, speech().samples);
    EXPECT_EQ(test::decode_audio(encode_wav(speech())).samples, speech().samples);
    EXPECT_EQ(decode_wav(encode_wav(speech())).samples, speech().samples);
    EXPECT_LT(flac.size(), speech().samples.size() * 2) << "FLAC did not compress speech";
}

// The one table of formats: every row encodes, into its own Content-Type, and a
// receiver maps that Content-Type back to the row.
TEST(Encoders, EveryFormatOfTheTableEncodesAndIsRecognizedByItsContentType) {
    ASSERT_EQ(audio_formats().size(), audio_format_table().size());
    for (const AudioFormat& f : audio_format_table()) {
        const EncodedAudio encoded = encode_audio(speech(), std::string(f.name));
        EXPECT_FALSE(encoded.bytes.empty()) << f.name;
        EXPECT_EQ(encoded.content_type.rfind(f.content_type, 0), 0U) << encoded.content_type;
        const AudioFormat* back = audio_format_for_content_type(encoded.content_type);
        ASSERT_NE(back, nullptr) << encoded.content_type;
        EXPECT_EQ(back->name, f.name);
    }
    EXPECT_EQ(audio_format_names(), "wav, pcm, mp3, opus or flac");
    EXPECT_EQ(audio_format_for_content_type("AUDIO/X-WAV")->name, "wav");
    EXPECT_EQ(audio_format_for_content_type("text/html"), nullptr);
    EXPECT_EQ(find_audio_format("aac"), nullptr);
}

TEST(Encoders, UnknownFormatIsPermanent) {
    try {
        (void)encode_audio(speech(), "aac");
        FAIL() << "encoded aac";
    } catch (const SpeechError& e) {
        EXPECT_TRUE(e.permanent());
        EXPECT_NE(std::string(e.what()).find("'aac'"), std::string::npos) << e.what();
    }
}

TEST(Encoders, WavDecodeRejectsWhatIsNotPcm16Mono) {
    Audio stereo_like{8000, {1, 2, 3, 4}};
    std::string wav = encode_wav(stereo_like);
    wav[22] = 2;  // channels
    EXPECT_THROW((void)decode_wav(wav), SpeechError);
    EXPECT_THROW((void)decode_wav("RIFF....WAVE"), SpeechError);
    EXPECT_THROW((void)decode_wav("not audio"), SpeechError);
    EXPECT_EQ(decode_wav(encode_wav(stereo_like)).samples, stereo_like.samples);
}

TEST(Encoders, JoiningNeedsOneRate) {
    Audio joined;
    append_audio(joined, Audio{22050, {1, 2}});
    append_audio(joined, Audio{22050, {3}});
    EXPECT_EQ(joined.samples, (std::vector<std::int16_t>{1, 2, 3}));
    EXPECT_THROW(append_audio(joined, Audio{24000, {4}}), SpeechError);
}

}  // namespace
}  // namespace voxq
