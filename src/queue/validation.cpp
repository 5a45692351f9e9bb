#include "queue/validation.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "voxq/errors.hpp"
#include "voxq/tts.hpp"

namespace voxq::detail {

namespace {

bool is_id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

bool all_id_chars(std::string_view s) {
    for (char c : s) {
        if (!is_id_char(c)) return false;
    }
    return true;
}

// Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

bool is_lower_alnum(std::string_view s, bool allow_more) {
    if (s.empty()) return false;
    for (char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                        (allow_more &&
                         ((c >= 'A' && c <= 'Z') || c == '-' || c == '.' || c == '+' || c == ':'));
        if (!ok) return false;
    }
    return true;
}

// Absolute http(s) URL with a host, no whitespace or control characters.
std::string url_problem(std::string_view url) {
    if (url.empty()) return "must not be empty";
    if (url.size() > kMaxUrlLength) return "is longer than 2048 characters";
    for (char c : url) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) {
            return "contains whitespace or control characters";
        }
    }
    std::string_view rest;
    if (url.rfind("http://", 0) == 0) {
        rest = url.substr(7);
    } else if (url.rfind("https://", 0) == 0) {
        rest = url.substr(8);
    } else {
        return "must be an absolute http:// or https:// URL";
    }
    const std::size_t end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
        authority = authority.substr(at + 1);
    }
    std::string_view host = authority;
    if (!host.empty() && host.front() == '[') {
        const std::size_t close = host.find(']');
        if (close == std::string_view::npos || close == 1) return "has a malformed IPv6 host";
        host = host.substr(1, close - 1);
    } else if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
        const std::string_view port = host.substr(colon + 1);
        host = host.substr(0, colon);
        if (port.empty() || port.size() > 5 ||
            port.find_first_not_of("0123456789") != std::string_view::npos ||
            std::stoi(std::string(port)) > 65535) {
            return "has an invalid port";
        }
    }
    if (host.empty()) return "has no host";
    return {};
}

[[noreturn]] void fail(std::size_t index, const std::string& field, const std::string& problem) {
    throw ValidationError("task " + std::to_string(index) + ": " + field + ": " + problem);
}

}  // namespace

bool is_valid_task_id(std::string_view id) {
    return !id.empty() && id.size() <= kMaxTaskIdLength && all_id_chars(id);
}

bool is_valid_queue_name(std::string_view name) {
    return !name.empty() && name.size() <= kMaxQueueNameLength && all_id_chars(name);
}

void validate_new_task(const Task& task, std::size_t index, const QueueConfig& config) {
    if (!task.id.empty() && !is_valid_task_id(task.id)) {
        fail(index, "id", "must be 1-128 characters of A-Z a-z 0-9 _ . : -");
    }
    if (task.state != TaskState::PENDING) {
        fail(index, "state",
             "enqueue accepts PENDING only, got " + std::string(to_string(task.state)));
    }
    if (!std::isfinite(task.schedule_at) || task.schedule_at < 0) {
        fail(index, "schedule_at", "must be a Unix time >= 0");
    }
    if (!std::isfinite(task.created_at) || task.created_at < 0) {
        fail(index, "created_at", "must be a Unix time >= 0");
    }
    if (!std::isfinite(task.updated_at) || task.updated_at < 0) {
        fail(index, "updated_at", "must be a Unix time >= 0");
    }
    if (task.attempt_count != 0) fail(index, "attempt_count", "must be 0 on enqueue");
    if (!is_valid_queue_name(task.queue)) {
        fail(index, "queue", "must be 1-64 characters of A-Z a-z 0-9 _ . : -");
    }
    if (task.max_attempts < 0) fail(index, "max_attempts", "must be >= 0 (0 = the default)");
    if (task.dedup_key.size() > kMaxDedupKeyLength) {
        fail(index, "dedup_key", "is longer than 256 bytes");
    }
    if (!is_valid_utf8(task.dedup_key)) fail(index, "dedup_key", "is not valid UTF-8");
    if (task.items.empty()) fail(index, "items", "a task needs at least one item");
    if (task.items.size() > kMaxItemsPerTask) fail(index, "items", "more than 1000 items");

    for (std::size_t i = 0; i < task.items.size(); ++i) {
        const TaskItem& item = task.items[i];
        const std::string prefix = "items[" + std::to_string(i) + "].";
        const TextToSpeechRequest& r = item.request;
        if (r.text.empty()) fail(index, prefix + "request.text", "must not be empty");
        if (r.text.size() > static_cast<std::size_t>(config.max_text_length)) {
            fail(index, prefix + "request.text",
                 "is " + std::to_string(r.text.size()) + " bytes; the limit is " +
                     std::to_string(config.max_text_length));
        }
        if (!is_valid_utf8(r.text)) fail(index, prefix + "request.text", "is not valid UTF-8");
        const std::size_t dot = r.voice_id.find('.');
        if (dot == std::string::npos || r.voice_id.size() > 128 ||
            !is_lower_alnum(std::string_view(r.voice_id).substr(0, dot), false) ||
            !is_lower_alnum(std::string_view(r.voice_id).substr(dot + 1), true)) {
            fail(index, prefix + "request.voice_id",
                 "'" + r.voice_id.substr(0, 128) +
                     "' is not of the form engine.voice (e.g. kokoro.af_heart, espeak.en-us)");
        }
        if (!std::isfinite(r.speed) || r.speed < 0.25 || r.speed > 4.0) {
            fail(index, prefix + "request.speed", "must be between 0.25 and 4.0");
        }
        if (const auto& formats = audio_formats();
            std::find(formats.begin(), formats.end(), r.format) == formats.end()) {
            fail(index, prefix + "request.format",
                 "'" + r.format.substr(0, 32) + "' is not one of wav, pcm, mp3, opus, flac");
        }
        if (std::string problem = url_problem(item.response_url); !problem.empty()) {
            fail(index, prefix + "response_url", problem);
        }
    }
}

std::string bounded_error(std::string_view message) {
    if (message.size() <= kMaxErrorLength) return std::string(message);
    std::size_t cut = kMaxErrorLength;
    // Step back over UTF-8 continuation bytes.
    while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
    return std::string(message.substr(0, cut)) + "...";
}

}  // namespace voxq::detail
