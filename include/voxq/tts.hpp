// File: voxq/tts.hpp
//
// Speech synthesis. An engine turns a TextToSpeechRequest into audio; errors say
// whether trying again can help (SpeechError::permanent()).
//
// espeak-ng is GPL-3+ and keeps process-global state, so it never runs inside
// libvoxq: EspeakEngine talks to the `voxq-espeak` helper program over a pipe,
// keeps it warm between requests, and restarts it if it dies (the request in
// flight then fails as a transient error).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "voxq/errors.hpp"
#include "voxq/task.hpp"

namespace voxq {

// PCM16 mono audio.
struct Audio {
    int sample_rate = 0;
    std::vector<std::int16_t> samples;
    [[nodiscard]] double seconds() const {
        return sample_rate > 0 ? static_cast<double>(samples.size()) / sample_rate : 0;
    }
};

// Synthesis failed. permanent(): the request can never succeed as it is (an
// unknown voice, say); otherwise a retry may succeed (the engine crashed).
class SpeechError : public QueueError {
  public:
    SpeechError(const std::string& message, bool permanent)
        : QueueError(message), permanent_(permanent) {}
    [[nodiscard]] bool permanent() const noexcept { return permanent_; }

  private:
    bool permanent_;
};

// Thread-safety: synthesize() and voices() may be called from many threads.
class SpeechEngine {
  public:
    virtual ~SpeechEngine() = default;
    // `request.voice_id` is "engine.voice"; the engine reads the part after the dot.
    virtual Audio synthesize(const TextToSpeechRequest& request) = 0;
    virtual std::vector<std::string> voices() = 0;
};

class EspeakEngine final : public SpeechEngine {
  public:
    // `helper`: path of the voxq-espeak program; empty = $VOXQ_ESPEAK_HELPER, else
    // voxq-espeak next to the running program. `processes`: helpers kept warm, so
    // that many syntheses run in parallel (each helper starts on first use).
    explicit EspeakEngine(std::string helper = "", int processes = 1);
    ~EspeakEngine() override;
    EspeakEngine(const EspeakEngine&) = delete;
    EspeakEngine& operator=(const EspeakEngine&) = delete;

    Audio synthesize(const TextToSpeechRequest& request) override;
    std::vector<std::string> voices() override;
    // A running helper's process id (0 if none): for tests that kill it.
    [[nodiscard]] int helper_pid() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
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
