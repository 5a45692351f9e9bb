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
    // voxq-espeak next to the running program.
    explicit EspeakEngine(std::string helper = "");
    ~EspeakEngine() override;
    EspeakEngine(const EspeakEngine&) = delete;
    EspeakEngine& operator=(const EspeakEngine&) = delete;

    Audio synthesize(const TextToSpeechRequest& request) override;
    std::vector<std::string> voices() override;
    // The helper's process id (0 if not running): for tests that kill it.
    [[nodiscard]] int helper_pid() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A WAV file (RIFF, PCM16 mono) holding `audio`.
[[nodiscard]] std::string encode_wav(const Audio& audio);

// `audio` in a request's output format, with its Content-Type. Throws
// SpeechError (permanent) for a format not supported yet (mp3, opus, flac).
struct EncodedAudio {
    std::string bytes;
    std::string content_type;
};
[[nodiscard]] EncodedAudio encode_audio(const Audio& audio, const std::string& format);

}  // namespace voxq
