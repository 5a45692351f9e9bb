#include "core/ulid.hpp"

#include <random>

namespace voxq::detail {

namespace {
constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
}  // namespace

std::string encode_ulid(std::uint64_t ms, std::uint64_t rand_hi16, std::uint64_t rand_lo64) {
    // 10 digits of time (50 bits, the top two zero), then 16 digits of the 80
    // random bits (hi16:lo64), most significant first.
    std::string out(26, '0');
    ms &= 0xFFFFFFFFFFFFULL;
    for (int i = 9; i >= 0; --i) {
        out[static_cast<std::size_t>(i)] = kCrockford[ms & 31U];
        ms >>= 5;
    }
    for (std::size_t j = 0; j < 16; ++j) {
        const int low_bit = 75 - 5 * static_cast<int>(j);  // this digit's lowest bit
        std::uint64_t digit = 0;
        for (int b = 4; b >= 0; --b) {
            const int pos = low_bit + b;
            const std::uint64_t bit =
                pos >= 64 ? (rand_hi16 >> (pos - 64)) & 1U : (rand_lo64 >> pos) & 1U;
            digit = (digit << 1) | bit;
        }
        out[10 + j] = kCrockford[digit];
    }
    return out;
}

UlidGenerator::UlidGenerator() {
    std::random_device rd;
    seed_[0] = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    seed_[1] = (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ 0x9E3779B97F4A7C15ULL;
}

// xorshift128+: fast and good enough once seeded from random_device; ids need
// uniqueness, not secrecy.
std::uint64_t UlidGenerator::random64() {
    std::uint64_t s1 = seed_[0];
    const std::uint64_t s0 = seed_[1];
    seed_[0] = s0;
    s1 ^= s1 << 23;
    seed_[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return seed_[1] + s0;
}

std::string UlidGenerator::next(std::int64_t now_ms) {
    std::lock_guard lock(mutex_);
    auto ms = static_cast<std::uint64_t>(now_ms < 0 ? 0 : now_ms);
    if (ms <= last_ms_) {
        // Same (or an earlier) millisecond: keep the time, increment the random
        // part, so ids stay strictly increasing within this process.
        ms = last_ms_;
        if (++rand_lo_ == 0) rand_hi_ = (rand_hi_ + 1) & 0xFFFFULL;
    } else {
        last_ms_ = ms;
        rand_hi_ = random64() & 0xFFFFULL;
        // Keep the top bit clear so increments have room before wrapping.
        rand_lo_ = random64() >> 1;
    }
    return encode_ulid(ms, rand_hi_, rand_lo_);
}

}  // namespace voxq::detail
