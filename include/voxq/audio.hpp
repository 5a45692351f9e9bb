// File: voxq/audio.hpp
//
// Audio as engines produce it (PCM16 mono) and as deliveries carry it: the WAV
// codec speech servers answer in, joining the pieces of a split text, and the
// encoders of every format in voxq/audio_format.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "voxq/audio_format.hpp"
#include "voxq/errors.hpp"

namespace voxq {

// PCM16 mono audio.
struct Audio {
    int sample_rate = 0;
    std::vector<std::int16_t> samples;
    [[nodiscard]] double seconds() const {
        return sample_rate > 0 ? static_cast<double>(samples.size()) / sample_rate : 0;
    }
};

// A WAV file (RIFF, PCM16 mono) holding `audio`.
[[nodiscard]] std::string encode_wav(const Audio& audio);
// The audio in a PCM16 mono WAV file (as OpenAI-compatible servers return it).
// Throws SpeechError (transient) for anything else.
[[nodiscard]] Audio decode_wav(const std::string& bytes);
// Appends `more` to `into` (both at the same rate): split texts are joined.
void append_audio(Audio& into, const Audio& more);

// `audio` in a request's output format (voxq/audio_format.hpp), with its
// Content-Type: wav, pcm (raw little-endian PCM16), mp3 (LAME), opus (Ogg,
// libopusenc) or flac (libFLAC). Throws SpeechError (permanent) for any other.
struct EncodedAudio {
    std::string bytes;
    std::string content_type;
};
[[nodiscard]] EncodedAudio encode_audio(const Audio& audio, const std::string& format);
// The names of audio_format_table(), every one of which encode_audio encodes.
[[nodiscard]] const std::vector<std::string>& audio_formats();

}  // namespace voxq
