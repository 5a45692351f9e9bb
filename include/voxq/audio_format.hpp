// File: voxq/audio_format.hpp
//
// The audio formats a task may ask for, in one table: the name a request uses,
// the Content-Type its delivery carries and the file extension a receiver saves
// it under. Every list, message and help string is derived from this table; the
// encoders (voxq/tts.hpp) cover exactly these names (a test holds them to it).
// Adding a format: a row here, an encoder in src/tts/encoders.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace voxq {

struct AudioFormat {
    std::string_view name;          // as in a request: "mp3"
    std::string_view content_type;  // of a delivery, without parameters: "audio/mpeg"
    std::string_view extension;     // of a saved file, without the dot: "mp3"
};

// wav, pcm, mp3, opus, flac (wav first: the default).
[[nodiscard]] const std::vector<AudioFormat>& audio_format_table();
// The row named `name`, or nullptr.
[[nodiscard]] const AudioFormat* find_audio_format(std::string_view name);
// The row whose Content-Type `content_type` is (parameters ignored, aliases
// such as audio/x-wav included), or nullptr.
[[nodiscard]] const AudioFormat* audio_format_for_content_type(std::string_view content_type);
// The names: "wav, pcm, mp3, opus or flac".
[[nodiscard]] std::string audio_format_names(std::string_view last_separator = " or ");

}  // namespace voxq
