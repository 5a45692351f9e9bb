// What speech servers send and what users write: the WAV decoder that reads a
// speech server's answer, and the splitter of long texts.
#include <algorithm>
#include <cstdint>
#include <string>

#include "util/text.hpp"
#include "voxq/errors.hpp"
#include "voxq/speech.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    try {
        const voxq::Audio audio = voxq::decode_wav(input);
        if (audio.samples.size() * 2 > input.size()) __builtin_trap();
    } catch (const voxq::SpeechError&) {
    }
    if (size > 0) {
        const std::size_t max = 1 + data[0] % 64;
        const std::string text = voxq::to_valid_utf8(input.substr(1));
        std::size_t total = 0;
        for (const std::string& piece : voxq::split_text(text, max)) {
            // Every piece is within the bound (or one character, when a character is
            // longer than the bound), valid UTF-8, and nothing but spaces is lost.
            if (piece.size() > std::max<std::size_t>(max, 4) || !voxq::is_valid_utf8(piece))
                __builtin_trap();
            total += piece.size();
        }
        if (total > text.size()) __builtin_trap();
    }
    return 0;
}
