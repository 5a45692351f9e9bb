// voxq-espeak: the one process that links libespeak-ng (GPL-3+, process-global
// state). Reads requests on stdin, answers on stdout (src/tts/espeak_protocol.hpp),
// one at a time, so espeak is never entered by two threads.
#include <espeak-ng/speak_lib.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
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

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

// Every id `voxq voices` lists, lowercased, mapped to the voice file that speaks
// it: each voice's file name ("en" for gmw/en, "en-us" for gmw/en-US) and each of
// its language tags ("en-gb", "fr-fr", "chr-us-qaaa-x-west"). espeak's
// SetVoiceByName knows only the first kind, so a language tag is resolved here,
// exactly (matching by language properties is too loose: "no-such-voice" picked
// Norwegian). MBROLA voices (mb/) are not installed and are left out.
std::map<std::string, std::string> voice_ids() {
    std::map<std::string, std::string> files;
    std::map<std::string, std::pair<int, std::string>> languages;  // tag -> (priority, file)
    for (const espeak_VOICE** v = espeak_ListVoices(nullptr); v != nullptr && *v != nullptr; ++v) {
        const std::string identifier = (*v)->identifier != nullptr ? (*v)->identifier : "";
        if (identifier.empty() || identifier.rfind("mb/", 0) == 0) continue;
        files.emplace(lower(identifier.substr(identifier.rfind('/') + 1)), identifier);
        // languages: (a priority byte, then a NUL-terminated tag)*, then an empty tag.
        for (const char* p = (*v)->languages; p != nullptr && p[0] != '\0' && p[1] != '\0';
             p += std::strlen(p + 1) + 2) {
            const int priority = static_cast<unsigned char>(p[0]);
            auto [it, added] = languages.try_emplace(lower(p + 1), priority, identifier);
            if (!added && priority < it->second.first) it->second = {priority, identifier};
        }
    }
    for (const auto& [tag, voice] : languages) files.emplace(tag, voice.second);
    return files;
}

// `voice` is a listed id, optionally with a variant ("en-gb+f3"), or anything
// else espeak's SetVoiceByName takes (a display name, "gmw/en-US"). A failed
// SetVoiceByName keeps the previous voice, so the result must be checked.
bool select_voice(const std::map<std::string, std::string>& ids, const std::string& voice) {
    if (voice.empty()) return false;
    const std::size_t plus = voice.find('+');
    const auto it = ids.find(lower(voice.substr(0, plus)));
    const std::string name = it == ids.end()             ? voice
                             : plus == std::string::npos ? it->second
                                                         : it->second + voice.substr(plus);
    // Selecting a voice reads its files and its language's dictionary again
    // (en_dict is 160 KB), each time: skipped when the voice is the one in use.
    static std::string in_use;
    if (name == in_use) return true;
    in_use.clear();  // a failed switch may leave a voice half loaded
    if (espeak_SetVoiceByName(name.c_str()) != EE_OK) return false;
    in_use = name;
    return true;
}

}  // namespace

int main() {
    // Everything this program has to say goes over its pipe. Its stderr is the
    // worker's log stream (one JSON object a line with VOXQ_LOG_FORMAT=json), and
    // libespeak-ng's audio layer prints there at start-up ("Failed to create
    // secure directory (.../pulse)" for a user without a home) although voxq
    // never plays audio: silenced.
    if (const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC); null >= 0) {
        ::dup2(null, 2);
        ::close(null);
    }
    const int rate =
        espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, nullptr, espeakINITIALIZE_DONT_EXIT);
    if (rate <= 0) {
        voxq::espeak::write_message(
            1,
            failure("espeak-ng failed to initialize (is espeak-ng-data installed?)", false).dump());
        return 1;
    }
    espeak_SetSynthCallback(collect);
    const std::map<std::string, std::string> ids = voice_ids();
    while (auto request = voxq::espeak::read_message(0)) {
        const auto req = nlohmann::json::parse(*request, nullptr, false);
        if (req.is_discarded() || !req.contains("op")) {
            voxq::espeak::write_message(1, failure("bad request", true).dump());
            continue;
        }
        if (req["op"] == "voices") {
            nlohmann::json names = nlohmann::json::array();
            for (const auto& [id, file] : ids) names.push_back(id);
            voxq::espeak::write_message(1, nlohmann::json{{"ok", true}, {"voices", names}}.dump());
            continue;
        }
        const std::string voice = req.value("voice", "");
        const std::string text = req.value("text", "");
        const double speed = req.value("speed", 1.0);
        if (!select_voice(ids, voice)) {
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
