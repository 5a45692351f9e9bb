// The speech cache (voxq/speech.hpp). A file is:
//   "VOXQSC1\n" | key length (u64) | key | sample rate (u32) | sample count (u64)
//   | samples (int16, native order) | FNV-1a 64 of everything before it
// in the machine's byte order: the cache is per machine, never copied elsewhere.
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "util/env.hpp"
#include "voxq/speech.hpp"

namespace voxq {

namespace {

constexpr char kMagic[8] = {'V', 'O', 'X', 'Q', 'S', 'C', '1', '\n'};

std::atomic<std::int64_t> g_hits{0};
std::atomic<std::int64_t> g_misses{0};

std::uint64_t fnv1a(std::string_view bytes) {
    std::uint64_t h = 14695981039346656037ULL;
    for (const unsigned char c : bytes) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

std::string hex_sha256(const std::string& text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 0xF];
    }
    return out;
}

template <typename T>
void put(std::string& out, T value) {
    out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

// Reads a T at `at`, moving it on; false when the bytes run out.
template <typename T>
bool take(std::string_view bytes, std::size_t& at, T& value) {
    if (bytes.size() - at < sizeof value) return false;
    std::memcpy(&value, bytes.data() + at, sizeof value);
    at += sizeof value;
    return true;
}

std::string encode(const std::string& key, const Audio& audio) {
    std::string out(kMagic, sizeof kMagic);
    put<std::uint64_t>(out, key.size());
    out += key;
    put<std::uint32_t>(out, static_cast<std::uint32_t>(audio.sample_rate));
    put<std::uint64_t>(out, audio.samples.size());
    out.append(reinterpret_cast<const char*>(audio.samples.data()),
               audio.samples.size() * sizeof(std::int16_t));
    put<std::uint64_t>(out, fnv1a(out));
    return out;
}

// The audio if `bytes` is a whole, intact file for `key`.
std::optional<Audio> decode(std::string_view bytes, const std::string& key) {
    std::uint64_t checksum = 0;
    if (bytes.size() < sizeof kMagic + sizeof checksum ||
        std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
        return std::nullopt;
    }
    // Everything but the checksum, which covers it.
    const std::string_view body = bytes.substr(0, bytes.size() - sizeof checksum);
    std::memcpy(&checksum, bytes.data() + body.size(), sizeof checksum);
    if (fnv1a(body) != checksum) return std::nullopt;
    std::size_t at = sizeof kMagic;
    std::uint64_t key_size = 0;
    if (!take(body, at, key_size) || key_size != key.size() || body.size() - at < key_size ||
        body.compare(at, key_size, key) != 0) {
        return std::nullopt;  // another request with the same hash, or damage
    }
    at += key_size;
    std::uint32_t rate = 0;
    std::uint64_t count = 0;
    if (!take(body, at, rate) || !take(body, at, count) ||
        (body.size() - at) % sizeof(std::int16_t) != 0 ||
        (body.size() - at) / sizeof(std::int16_t) != count) {  // no overflow: divide
        return std::nullopt;
    }
    Audio audio;
    audio.sample_rate = static_cast<int>(rate);
    audio.samples.resize(count);
    std::memcpy(audio.samples.data(), body.data() + at, count * sizeof(std::int16_t));
    return audio;
}

}  // namespace

SpeechCache::SpeechCache(std::string dir, std::uint64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw ConfigError("VOXQ_SPEECH_CACHE_DIR: cannot create " + dir_ + ": " + ec.message());
}

std::shared_ptr<SpeechCache> SpeechCache::from_env() {
    const env::Reader vars;
    const std::optional<std::string> dir = vars.text("VOXQ_SPEECH_CACHE_DIR");
    const auto max_bytes = vars.integer("VOXQ_SPEECH_CACHE_MAX_BYTES", 1 << 20, 1LL << 50);
    if (!dir || dir->empty()) return nullptr;
    return std::make_shared<SpeechCache>(
        *dir, max_bytes ? static_cast<std::uint64_t>(*max_bytes) : kDefaultMaxBytes);
}

std::optional<Audio> SpeechCache::find(const std::string& key) {
    const std::string path = dir_ + "/" + hex_sha256(key);
    std::ifstream in(path, std::ios::binary);
    if (in) {
        const std::string bytes{std::istreambuf_iterator<char>(in), {}};
        if (std::optional<Audio> audio = decode(bytes, key)) {
            utimes(path.c_str(), nullptr);  // recently used: evicted last
            g_hits.fetch_add(1, std::memory_order_relaxed);
            return audio;
        }
        std::error_code ignored;
        std::filesystem::remove(path, ignored);  // damaged or foreign: a miss, gone
    }
    g_misses.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
}

void SpeechCache::store(const std::string& key, const Audio& audio) {
    const std::string bytes = encode(key, audio);
    const std::string path = dir_ + "/" + hex_sha256(key);
    std::string temporary = dir_ + "/.tmp-XXXXXX";
    const int fd = mkstemp(temporary.data());
    if (fd < 0) return;
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    // Whole or not at all: readers only ever see a complete file at `path`.
    if (done != bytes.size() || std::rename(temporary.c_str(), path.c_str()) != 0) {
        ::unlink(temporary.c_str());
        return;
    }
    bool scan = false;
    {
        std::lock_guard lock(mutex_);
        written_since_scan_ += bytes.size();
        // Scanning the directory costs; do it when this process alone may have
        // written a tenth of the bound since the last scan.
        if (written_since_scan_ >= max_bytes_ / 10) {
            written_since_scan_ = 0;
            scan = true;
        }
    }
    if (scan) evict();
}

void SpeechCache::evict() {
    struct File {
        std::filesystem::file_time_type used;
        std::uint64_t size;
        std::filesystem::path path;
    };
    std::vector<File> files;
    std::uint64_t total = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
        std::error_code gone;  // another process may evict the same file
        const auto size = entry.file_size(gone);
        const auto used = entry.last_write_time(gone);
        if (gone || !entry.is_regular_file(gone)) continue;
        files.push_back({used, size, entry.path()});
        total += size;
    }
    if (total <= max_bytes_) return;
    std::sort(files.begin(), files.end(),
              [](const File& a, const File& b) { return a.used < b.used; });
    // Down to 90% of the bound, so eviction does not run on every store.
    for (const File& f : files) {
        if (total <= max_bytes_ / 10 * 9) break;
        std::error_code ignored;
        if (std::filesystem::remove(f.path, ignored)) total -= f.size;
    }
}

std::int64_t SpeechCache::hits() noexcept {
    return g_hits.load(std::memory_order_relaxed);
}

std::int64_t SpeechCache::misses() noexcept {
    return g_misses.load(std::memory_order_relaxed);
}

}  // namespace voxq
