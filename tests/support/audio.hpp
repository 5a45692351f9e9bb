// Decodes audio files with libsndfile, an implementation independent of the
// encoders under test: a file it reads back, at the rate and length expected,
// is a file a player can play.
#pragma once

#include <sndfile.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace voxq::test {

struct DecodedAudio {
    bool ok = false;
    std::string error;
    int sample_rate = 0;
    int channels = 0;
    long long frames = 0;
    int major_format = 0;  // SF_FORMAT_WAV, SF_FORMAT_OGG, SF_FORMAT_FLAC, SF_FORMAT_MPEG...
    int peak = 0;          // loudest sample read back (silence decodes too)
    std::vector<std::int16_t> samples;  // interleaved
    [[nodiscard]] double seconds() const {
        return sample_rate > 0 ? static_cast<double>(frames) / sample_rate : 0;
    }
};

inline DecodedAudio decode_audio(const std::string& bytes) {
    struct Reader {
        const std::string& bytes;
        sf_count_t pos = 0;
    } reader{bytes};
    SF_VIRTUAL_IO io{};
    io.get_filelen = [](void* u) {
        return static_cast<sf_count_t>(static_cast<Reader*>(u)->bytes.size());
    };
    io.seek = [](sf_count_t offset, int whence, void* u) {
        auto* r = static_cast<Reader*>(u);
        const auto size = static_cast<sf_count_t>(r->bytes.size());
        sf_count_t to = whence == SEEK_SET   ? offset
                        : whence == SEEK_CUR ? r->pos + offset
                                             : size + offset;
        r->pos = std::clamp<sf_count_t>(to, 0, size);
        return r->pos;
    };
    io.read = [](void* ptr, sf_count_t count, void* u) {
        auto* r = static_cast<Reader*>(u);
        const sf_count_t n = std::min(count, static_cast<sf_count_t>(r->bytes.size()) - r->pos);
        std::memcpy(ptr, r->bytes.data() + r->pos, static_cast<std::size_t>(n));
        r->pos += n;
        return n;
    };
    io.write = [](const void*, sf_count_t, void*) { return sf_count_t{0}; };
    io.tell = [](void* u) { return static_cast<Reader*>(u)->pos; };
    SF_INFO info{};
    SNDFILE* file = sf_open_virtual(&io, SFM_READ, &info, &reader);
    DecodedAudio out;
    if (file == nullptr) {
        out.error = sf_strerror(nullptr);
        return out;
    }
    out.sample_rate = info.samplerate;
    out.channels = info.channels;
    out.major_format = info.format & SF_FORMAT_TYPEMASK;
    // Count what decodes rather than trusting the header's length.
    short buf[4096];
    sf_count_t n = 0;
    while ((n = sf_read_short(file, buf, 4096)) > 0) {
        out.frames += n / std::max(1, info.channels);
        for (sf_count_t i = 0; i < n; ++i) out.peak = std::max(out.peak, std::abs(int{buf[i]}));
        out.samples.insert(out.samples.end(), buf, buf + n);
    }
    sf_close(file);
    out.ok = out.frames > 0;
    if (!out.ok) out.error = "no samples decoded";
    return out;
}

}  // namespace voxq::test
