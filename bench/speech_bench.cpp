// The synthesis-only baseline of the speech benchmark: the same texts through
// espeak-ng helper processes, with nothing else (no queue, encoding or
// delivery). scripts/bench_speech.py runs it next to voxq workers.
//
//   voxq_speech_bench --texts FILE --processes P
// prints: RESULT {"system":"espeak alone",...}
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "voxq/speech.hpp"

int main(int argc, char** argv) {
    std::string texts_file;
    int processes = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--texts") == 0) texts_file = argv[i + 1];
        if (std::strcmp(argv[i], "--processes") == 0)
            processes = std::max(1, std::atoi(argv[i + 1]));
    }
    std::vector<std::string> texts;
    std::ifstream in(texts_file);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) texts.push_back(line);
    if (texts.empty()) {
        std::fprintf(stderr, "usage: voxq_speech_bench --texts FILE --processes P\n");
        return 2;
    }
    voxq::EspeakEngine engine("", processes);
    // Warm the helpers (start-up is not synthesis).
    {
        std::vector<std::thread> warm;
        warm.reserve(static_cast<std::size_t>(processes));
        for (int p = 0; p < processes; ++p)
            warm.emplace_back([&] {
                (void)engine.synthesize({"warm up", "espeak.en-us", 1.0, "wav"});
            });
        for (auto& t : warm) t.join();
    }
    std::atomic<std::size_t> next = 0;
    std::atomic<std::int64_t> audio_ms = 0;
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(processes));
    for (int p = 0; p < processes; ++p) {
        threads.emplace_back([&] {
            for (std::size_t i = next++; i < texts.size(); i = next++) {
                const voxq::Audio a = engine.synthesize({texts[i], "espeak.en-us", 1.0, "wav"});
                audio_ms += static_cast<std::int64_t>(a.seconds() * 1000);
            }
        });
    }
    for (auto& t : threads) t.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "RESULT {\"system\":\"espeak alone\",\"processes\":%d,\"items\":%zu,\"seconds\":%.3f,"
        "\"audio_seconds\":%.1f}\n",
        processes, texts.size(), seconds, static_cast<double>(audio_ms.load()) / 1000);
    return 0;
}
