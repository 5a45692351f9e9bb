// Audio containers: WAV and raw PCM by hand (a fixed 44-byte header), MP3 with
// LAME, Opus in Ogg with libopusenc (which resamples to 48 kHz itself) and FLAC
// with libFLAC. Each encoder writes into memory: a webhook body is sent whole.
#include <FLAC/stream_encoder.h>
#include <lame/lame.h>
#include <openssl/rand.h>
#include <opus/opusenc.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>

#include "voxq/audio_format.hpp"
#include "voxq/speech.hpp"

static_assert(std::endian::native == std::endian::little,
              "WAV and raw PCM are written from the samples in host order");

namespace voxq {

namespace {

[[noreturn]] void encoder_failed(const std::string& format, const std::string& why) {
    // Not permanent: an encoder failing on valid PCM is a fault of this process
    // (out of memory, say), which a later attempt may not hit.
    throw SpeechError(format + " encoder: " + why, false);
}

std::uint32_t read_u32(const std::string& b, std::size_t at) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
    return v;
}
std::uint16_t read_u16(const std::string& b, std::size_t at) {
    return static_cast<std::uint16_t>(static_cast<unsigned char>(b[at]) |
                                      (static_cast<unsigned char>(b[at + 1]) << 8));
}

std::string encode_mp3(const Audio& audio) {
    std::unique_ptr<lame_global_flags, decltype(&lame_close)> lame(lame_init(), &lame_close);
    if (!lame) encoder_failed("mp3", "lame_init failed");
    lame_set_in_samplerate(lame.get(), audio.sample_rate);
    lame_set_out_samplerate(lame.get(), audio.sample_rate);
    lame_set_num_channels(lame.get(), 1);
    lame_set_mode(lame.get(), MONO);
    lame_set_brate(lame.get(), 64);
    lame_set_quality(lame.get(), 5);
    lame_set_bWriteVbrTag(lame.get(), 1);  // an Info frame first: players learn the length
    if (lame_init_params(lame.get()) < 0) encoder_failed("mp3", "unsupported sample rate");

    std::string out;
    constexpr int kChunk = 8192;
    std::vector<unsigned char> buf(static_cast<std::size_t>(kChunk * 5 / 4 + 7200));
    std::size_t done = 0;
    while (done < audio.samples.size()) {
        const int n = static_cast<int>(std::min<std::size_t>(kChunk, audio.samples.size() - done));
        // Mono: LAME reads only the left channel.
        const int written = lame_encode_buffer(lame.get(), audio.samples.data() + done, nullptr, n,
                                               buf.data(), static_cast<int>(buf.size()));
        if (written < 0)
            encoder_failed("mp3", "lame_encode_buffer returned " + std::to_string(written));
        out.append(reinterpret_cast<const char*>(buf.data()), static_cast<std::size_t>(written));
        done += static_cast<std::size_t>(n);
    }
    const int tail = lame_encode_flush(lame.get(), buf.data(), static_cast<int>(buf.size()));
    if (tail < 0) encoder_failed("mp3", "lame_encode_flush failed");
    out.append(reinterpret_cast<const char*>(buf.data()), static_cast<std::size_t>(tail));
    // The Info frame written first was a placeholder; fill it in now.
    const std::size_t tag = lame_get_lametag_frame(lame.get(), buf.data(), buf.size());
    if (tag > 0 && tag <= out.size()) std::memcpy(out.data(), buf.data(), tag);
    return out;
}

std::string encode_opus(const Audio& audio) {
    std::string out;
    OpusEncCallbacks callbacks{[](void* user, const unsigned char* ptr, opus_int32 len) {
                                   static_cast<std::string*>(user)->append(
                                       reinterpret_cast<const char*>(ptr),
                                       static_cast<std::size_t>(len));
                                   return 0;
                               },
                               [](void*) { return 0; }};
    std::unique_ptr<OggOpusComments, decltype(&ope_comments_destroy)> comments(
        ope_comments_create(), &ope_comments_destroy);
    if (!comments) encoder_failed("opus", "ope_comments_create failed");
    ope_comments_add(comments.get(), "ENCODER", "voxq");
    int error = 0;
    std::unique_ptr<OggOpusEnc, decltype(&ope_encoder_destroy)> encoder(
        ope_encoder_create_callbacks(&callbacks, &out, comments.get(), audio.sample_rate, 1, 0,
                                     &error),
        &ope_encoder_destroy);
    if (!encoder) encoder_failed("opus", ope_strerror(error));
    ope_encoder_ctl(encoder.get(), OPUS_SET_BITRATE(32000));
    // A random serial number per stream (RFC 7845 asks for one): two outputs
    // joined end to end are then a valid chained Ogg stream. libopusenc's own
    // default is an unseeded rand(), the same number in every process.
    std::uint32_t serial = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1)
        encoder_failed("opus", "no random bytes for the Ogg serial number");
    ope_encoder_ctl(encoder.get(), OPE_SET_SERIALNO(static_cast<opus_int32>(serial & 0x7fffffffU)));
    if (const int rc = ope_encoder_write(encoder.get(), audio.samples.data(),
                                         static_cast<int>(audio.samples.size()));
        rc != OPE_OK)
        encoder_failed("opus", ope_strerror(rc));
    if (const int rc = ope_encoder_drain(encoder.get()); rc != OPE_OK)
        encoder_failed("opus", ope_strerror(rc));
    return out;
}

// libFLAC writes into a string; seek/tell let it rewrite STREAMINFO at the end
// with the sample count and MD5.
struct FlacSink {
    std::string bytes;
    std::size_t pos = 0;
};

std::string encode_flac(const Audio& audio) {
    std::unique_ptr<FLAC__StreamEncoder, decltype(&FLAC__stream_encoder_delete)> encoder(
        FLAC__stream_encoder_new(), &FLAC__stream_encoder_delete);
    if (!encoder) encoder_failed("flac", "FLAC__stream_encoder_new failed");
    FLAC__stream_encoder_set_channels(encoder.get(), 1);
    FLAC__stream_encoder_set_bits_per_sample(encoder.get(), 16);
    FLAC__stream_encoder_set_sample_rate(encoder.get(), static_cast<unsigned>(audio.sample_rate));
    FLAC__stream_encoder_set_compression_level(encoder.get(), 5);
    FLAC__stream_encoder_set_total_samples_estimate(encoder.get(), audio.samples.size());
    FlacSink sink;
    auto write = [](const FLAC__StreamEncoder*, const FLAC__byte buffer[], size_t bytes, unsigned,
                    unsigned, void* user) {
        auto* s = static_cast<FlacSink*>(user);
        if (s->pos + bytes > s->bytes.size()) s->bytes.resize(s->pos + bytes);
        std::memcpy(s->bytes.data() + s->pos, buffer, bytes);
        s->pos += bytes;
        return FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
    };
    auto seek = [](const FLAC__StreamEncoder*, FLAC__uint64 offset, void* user) {
        auto* s = static_cast<FlacSink*>(user);
        if (offset > s->bytes.size()) return FLAC__STREAM_ENCODER_SEEK_STATUS_ERROR;
        s->pos = static_cast<std::size_t>(offset);
        return FLAC__STREAM_ENCODER_SEEK_STATUS_OK;
    };
    auto tell = [](const FLAC__StreamEncoder*, FLAC__uint64* offset, void* user) {
        *offset = static_cast<const FlacSink*>(user)->pos;
        return FLAC__STREAM_ENCODER_TELL_STATUS_OK;
    };
    if (FLAC__stream_encoder_init_stream(encoder.get(), write, seek, tell, nullptr, &sink) !=
        FLAC__STREAM_ENCODER_INIT_STATUS_OK)
        encoder_failed("flac", "init failed");
    std::vector<FLAC__int32> block;
    constexpr std::size_t kChunk = 8192;
    for (std::size_t done = 0; done < audio.samples.size(); done += kChunk) {
        const std::size_t n = std::min(kChunk, audio.samples.size() - done);
        block.assign(audio.samples.begin() + static_cast<std::ptrdiff_t>(done),
                     audio.samples.begin() + static_cast<std::ptrdiff_t>(done + n));
        if (!FLAC__stream_encoder_process_interleaved(encoder.get(), block.data(),
                                                      static_cast<unsigned>(n)))
            encoder_failed("flac", FLAC__stream_encoder_get_resolved_state_string(encoder.get()));
    }
    if (!FLAC__stream_encoder_finish(encoder.get())) encoder_failed("flac", "finish failed");
    return std::move(sink.bytes);
}

}  // namespace

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
    // The samples as they are: little-endian is the host order on every
    // platform voxq builds for (static_assert below).
    out.append(reinterpret_cast<const char*>(audio.samples.data()), data_bytes);
    return out;
}

Audio decode_wav(const std::string& bytes) {
    if (bytes.size() < 12 || bytes.compare(0, 4, "RIFF") != 0 || bytes.compare(8, 4, "WAVE") != 0)
        throw SpeechError("not a WAV file (no RIFF/WAVE header)", false);
    Audio audio;
    int channels = 0;
    int bits = 0;
    std::size_t at = 12;
    while (at + 8 <= bytes.size()) {
        const std::string id = bytes.substr(at, 4);
        std::size_t size = read_u32(bytes, at + 4);
        const std::size_t body = at + 8;
        // Streaming servers write 0 or 0xFFFFFFFF as the data size: take the rest.
        if (id == "data" && (size == 0 || body + size > bytes.size())) size = bytes.size() - body;
        if (body + size > bytes.size()) break;
        if (id == "fmt " && size >= 16) {
            if (read_u16(bytes, body) != 1) throw SpeechError("WAV is not integer PCM", false);
            channels = read_u16(bytes, body + 2);
            audio.sample_rate = static_cast<int>(read_u32(bytes, body + 4));
            bits = read_u16(bytes, body + 14);
        } else if (id == "data") {
            // A speech server's header is outside input: rates beyond 8..384 kHz
            // would reach the encoders.
            if (audio.sample_rate < 8000 || audio.sample_rate > 384000)
                throw SpeechError("WAV sample rate " + std::to_string(audio.sample_rate) +
                                      " Hz is outside 8000..384000",
                                  false);
            if (channels != 1 || bits != 16)
                throw SpeechError("WAV must be 16-bit mono PCM (got " + std::to_string(channels) +
                                      " channels, " + std::to_string(bits) + " bits)",
                                  false);
            audio.samples.resize(size / 2);
            for (std::size_t i = 0; i < audio.samples.size(); ++i)
                audio.samples[i] = static_cast<std::int16_t>(read_u16(bytes, body + 2 * i));
            return audio;
        }
        at = body + size + (size & 1);  // chunks are padded to even sizes
    }
    throw SpeechError("WAV has no data chunk", false);
}

void append_audio(Audio& into, const Audio& more) {
    if (into.samples.empty() && into.sample_rate == 0) into.sample_rate = more.sample_rate;
    if (more.sample_rate != into.sample_rate)
        throw SpeechError("cannot join audio at " + std::to_string(more.sample_rate) + " Hz to " +
                              std::to_string(into.sample_rate) + " Hz",
                          false);
    into.samples.insert(into.samples.end(), more.samples.begin(), more.samples.end());
}

const std::vector<std::string>& audio_formats() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> out;
        for (const AudioFormat& f : audio_format_table()) out.emplace_back(f.name);
        return out;
    }();
    return names;
}

namespace {

std::string encode_pcm(const Audio& audio) {
    // Raw little-endian PCM16 mono (the host order on every platform voxq builds for).
    return {reinterpret_cast<const char*>(audio.samples.data()),
            audio.samples.size() * sizeof(std::int16_t)};
}

// The encoder of each row of audio_format_table(), and what its Content-Type adds.
struct Encoder {
    std::string_view format;
    std::string (*encode)(const Audio&);
    bool rate_parameter;          // ";rate=<Hz>;channels=1"
    std::string_view parameters;  // appended as is
};
constexpr Encoder kEncoders[] = {
    {"wav", encode_wav, false, ""},   {"pcm", encode_pcm, true, ";format=s16le"},
    {"mp3", encode_mp3, false, ""},   {"opus", encode_opus, false, "; codecs=opus"},
    {"flac", encode_flac, false, ""},
};

}  // namespace

EncodedAudio encode_audio(const Audio& audio, const std::string& format) {
    const AudioFormat* row = find_audio_format(format);
    for (const Encoder& e : kEncoders) {
        if (row == nullptr || e.format != row->name) continue;
        std::string type(row->content_type);
        if (e.rate_parameter) type += ";rate=" + std::to_string(audio.sample_rate) + ";channels=1";
        type += e.parameters;
        return {e.encode(audio), std::move(type)};
    }
    throw SpeechError(
        "format '" + format.substr(0, 32) + "' is not supported (use " + audio_format_names() + ")",
        true);
}

}  // namespace voxq
