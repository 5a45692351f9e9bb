// voxq-espeak: the one process that links libespeak-ng (GPL-3+, process-global
// state). Reads requests on stdin, answers on stdout (src/tts/espeak_protocol.hpp),
// one at a time, so espeak is never entered by two threads.
#include <espeak-ng/speak_lib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "tts/espeak_protocol.hpp"

namespace {

std::vector<short>* g_out = nullptr;  // the buffer of the synthesis in progress

int collect(short* wav, int n, espeak_EVENT*) {
    if (wav != nullptr && n > 0 && g_out != nullptr) g_out->insert(g_out->end(), wav, wav + n);
    return 0;
}

nlohmann::json failure(const std::string& message, bool permanent) {
    return {{"ok", false}, {"error", message}, {"permanent", permanent}};
}

// By espeak-ng's own voice names ("en-us", "de", "en-us+f3"), as `voxq voices`
// lists them. (Matching by language properties was tried and is too loose:
// "no-such-voice" picked Norwegian.) A failed SetVoiceByName keeps the previous
// voice, so the result must be checked.
bool select_voice(const std::string& voice) {
    return !voice.empty() && espeak_SetVoiceByName(voice.c_str()) == EE_OK;
}

}  // namespace

int main() {
    const int rate =
        espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, nullptr, espeakINITIALIZE_DONT_EXIT);
    if (rate <= 0) {
        voxq::espeak::write_message(
            1,
            failure("espeak-ng failed to initialize (is espeak-ng-data installed?)", false).dump());
        return 1;
    }
    espeak_SetSynthCallback(collect);
    while (auto request = voxq::espeak::read_message(0)) {
        const auto req = nlohmann::json::parse(*request, nullptr, false);
        if (req.is_discarded() || !req.contains("op")) {
            voxq::espeak::write_message(1, failure("bad request", true).dump());
            continue;
        }
        if (req["op"] == "voices") {
            nlohmann::json names = nlohmann::json::array();
            for (const espeak_VOICE** v = espeak_ListVoices(nullptr); v != nullptr && *v != nullptr;
                 ++v) {
                // languages: a priority byte, then the name, NUL-terminated.
                if ((*v)->languages != nullptr && (*v)->languages[0] != '\0') {
                    names.push_back(std::string((*v)->languages + 1));
                }
            }
            voxq::espeak::write_message(1, nlohmann::json{{"ok", true}, {"voices", names}}.dump());
            continue;
        }
        const std::string voice = req.value("voice", "");
        const std::string text = req.value("text", "");
        const double speed = req.value("speed", 1.0);
        if (!select_voice(voice)) {
            voxq::espeak::write_message(1, failure("espeak-ng has no voice '" + voice +
                                                       "' (see voxq voices --engine espeak)",
                                                   true)
                                               .dump());
            continue;
        }
        // 175 words per minute is espeak's normal rate; it accepts 80..450.
        const int wpm = static_cast<int>(std::lround(std::clamp(175.0 * speed, 80.0, 450.0)));
        espeak_SetParameter(espeakRATE, wpm, 0);
        std::vector<short> samples;
        g_out = &samples;
        const espeak_ERROR rc = espeak_Synth(text.c_str(), text.size() + 1, 0, POS_CHARACTER, 0,
                                             espeakCHARS_UTF8 | espeakENDPAUSE, nullptr, nullptr);
        g_out = nullptr;
        if (rc != EE_OK) {
            voxq::espeak::write_message(
                1,
                failure("espeak-ng could not synthesize (error " + std::to_string(rc) + ")", false)
                    .dump());
            continue;
        }
        voxq::espeak::write_message(
            1, nlohmann::json{{"ok", true}, {"rate", rate}, {"samples", samples.size()}}.dump());
        voxq::espeak::write_message(1, std::string(reinterpret_cast<const char*>(samples.data()),
                                                   samples.size() * sizeof(short)));
    }
    espeak_Terminate();
    return 0;
}
