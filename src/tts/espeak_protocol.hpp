// The pipe protocol between EspeakEngine (libvoxq) and the voxq-espeak helper.
// Every message is a 4-byte little-endian length, then that many bytes:
//   request:  JSON {"op": "synth", "voice", "speed", "text"} or {"op": "voices"}
//   response: JSON {"ok": true, "rate": R, "samples": N} followed by a second
//             message of N*2 bytes of PCM16 (synth); {"ok": true, "voices": [...]};
//             or {"ok": false, "error": "...", "permanent": bool}
#pragma once

#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>

namespace voxq::espeak {

inline bool write_all(int fd, const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

inline bool read_all(int fd, void* data, std::size_t n) {
    auto* p = static_cast<char*>(data);
    while (n > 0) {
        const ssize_t r = ::read(fd, p, n);
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

inline bool write_message(int fd, const std::string& bytes) {
    const auto n = static_cast<std::uint32_t>(bytes.size());
    const unsigned char len[4] = {static_cast<unsigned char>(n), static_cast<unsigned char>(n >> 8),
                                  static_cast<unsigned char>(n >> 16),
                                  static_cast<unsigned char>(n >> 24)};
    return write_all(fd, len, 4) && write_all(fd, bytes.data(), bytes.size());
}

// std::nullopt on EOF or a message over `max_bytes`.
inline std::optional<std::string> read_message(int fd, std::size_t max_bytes = 256U << 20U) {
    unsigned char len[4];
    if (!read_all(fd, len, 4)) return std::nullopt;
    const std::uint32_t n =
        len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<std::uint32_t>(len[3]) << 24);
    if (n > max_bytes) return std::nullopt;
    std::string bytes(n, '\0');
    if (!read_all(fd, bytes.data(), n)) return std::nullopt;
    return bytes;
}

}  // namespace voxq::espeak
