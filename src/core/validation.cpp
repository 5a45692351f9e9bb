#include "core/validation.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/text.hpp"
#include "voxq/audio_format.hpp"
#include "voxq/errors.hpp"

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

// A voice name reaches engines (espeak-ng resolves it as a path under its data
// folder): no empty, "." or ".." segments.
bool is_safe_voice_name(std::string_view voice) {
    return !voice.empty() && voice.front() != '.' && voice.back() != '.' &&
           voice.find("..") == std::string_view::npos;
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
    // Year 9999 at most: every later conversion to microseconds stays in range.
    const auto time_ok = [](double t) { return std::isfinite(t) && t >= 0 && t <= kMaxUnixTime; };
    if (!time_ok(task.schedule_at)) {
        fail(index, "schedule_at", "must be a Unix time from 0 to 253402300799 (year 9999)");
    }
    if (!time_ok(task.created_at)) {
        fail(index, "created_at", "must be a Unix time from 0 to 253402300799 (year 9999)");
    }
    if (!time_ok(task.updated_at)) {
        fail(index, "updated_at", "must be a Unix time from 0 to 253402300799 (year 9999)");
    }
    if (task.priority < INT32_MIN || task.priority > INT32_MAX) {
        fail(index, "priority", "must fit in 32 bits (-2147483648..2147483647)");
    }
    if (task.attempt_count != 0) fail(index, "attempt_count", "must be 0 on enqueue");
    if (!is_valid_queue_name(task.queue)) {
        fail(index, "queue", "must be 1-64 characters of A-Z a-z 0-9 _ . : -");
    }
    if (task.max_attempts < 0 || task.max_attempts > 1'000'000)
        fail(index, "max_attempts", "must be 0..1000000 (0 = the default)");
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
            !is_lower_alnum(std::string_view(r.voice_id).substr(dot + 1), true) ||
            !is_safe_voice_name(std::string_view(r.voice_id).substr(dot + 1))) {
            fail(index, prefix + "request.voice_id",
                 "'" + r.voice_id.substr(0, 128) +
                     "' is not of the form engine.voice (e.g. kokoro.af_heart, espeak.en-us)");
        }
        if (!std::isfinite(r.speed) || r.speed < 0.25 || r.speed > 4.0) {
            fail(index, prefix + "request.speed", "must be between 0.25 and 4.0");
        }
        if (find_audio_format(r.format) == nullptr) {
            fail(index, prefix + "request.format",
                 "'" + r.format.substr(0, 32) + "' is not one of " + audio_format_names(", "));
        }
        if (std::string problem = url_problem(item.response_url); !problem.empty()) {
            fail(index, prefix + "response_url", problem);
        }
    }
}

std::string bounded_error(std::string_view message) {
    // Whatever a speech server or receiver said: valid UTF-8, no credentials, cut
    // at a character boundary, so stored errors always serialize.
    return truncate_utf8(redact_credentials(to_valid_utf8(message)), kMaxErrorLength);
}

}  // namespace voxq::detail
