#include "voxq/audio_format.hpp"

#include <algorithm>
#include <cctype>

#include "util/text.hpp"

namespace voxq {

namespace {

// Content types receivers and servers also use for the same bytes.
struct Alias {
    std::string_view content_type;
    std::string_view format;
};
constexpr Alias kAliases[] = {
    {"audio/x-wav", "wav"},   {"audio/wave", "wav"}, {"audio/opus", "opus"},
    {"audio/x-flac", "flac"}, {"audio/mp3", "mp3"},
};

bool same_type(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

const std::vector<AudioFormat>& audio_format_table() {
    static const std::vector<AudioFormat> table{
        {"wav", "audio/wav", "wav"},
        // Raw little-endian PCM16 (as OpenAI's and Polly's "pcm"); the delivery
        // adds ";rate=<Hz>;channels=1;format=s16le". Not audio/L16: that type
        // means big-endian (RFC 2586).
        {"pcm", "audio/pcm", "pcm"},
        {"mp3", "audio/mpeg", "mp3"},
        {"opus", "audio/ogg", "ogg"},  // Ogg Opus; the delivery adds "; codecs=opus"
        {"flac", "audio/flac", "flac"},
    };
    return table;
}

const AudioFormat* find_audio_format(std::string_view name) {
    for (const AudioFormat& f : audio_format_table()) {
        if (f.name == name) return &f;
    }
    return nullptr;
}

const AudioFormat* audio_format_for_content_type(std::string_view content_type) {
    const std::string type = media_type(content_type);
    for (const AudioFormat& f : audio_format_table()) {
        if (same_type(type, f.content_type)) return &f;
    }
    for (const Alias& a : kAliases) {
        if (type == a.content_type) return find_audio_format(a.format);
    }
    return nullptr;
}

std::string audio_format_names(std::string_view last_separator) {
    const auto& table = audio_format_table();
    std::string out;
    for (std::size_t i = 0; i < table.size(); ++i) {
        if (i > 0) out += i + 1 == table.size() ? std::string(last_separator) : std::string(", ");
        out += table[i].name;
    }
    return out;
}

}  // namespace voxq
