// ULIDs: 48-bit millisecond time + 80 random bits, Crockford base32, 26 chars.
// Monotonic within a process: ids made in the same millisecond increment the
// random part, so they sort in creation order. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace voxq::detail {

class UlidGenerator {
  public:
    UlidGenerator();
    // `now_ms`: milliseconds since the Unix epoch.
    std::string next(std::int64_t now_ms);

  private:
    std::mutex mutex_;
    std::uint64_t last_ms_ = 0;
    std::uint64_t rand_hi_ = 0;  // top 16 of the 80 random bits
    std::uint64_t rand_lo_ = 0;  // low 64 bits
    std::uint64_t seed_[2]{};
    std::uint64_t random64();
};

// Encodes time and randomness as a ULID (exposed for tests).
std::string encode_ulid(std::uint64_t ms, std::uint64_t rand_hi16, std::uint64_t rand_lo64);

}  // namespace voxq::detail
