// What a delivery carries (SPEC §7), built by the worker and unwrapped by
// receivers (voxq sink, the dashboard's /inbox): the Standard Webhooks event or
// the raw audio with voxq-* headers, and the webhook-id both are sent under.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/env.hpp"
#include "util/text.hpp"
#include "util/time.hpp"
#include "voxq/errors.hpp"
#include "voxq/webhook.hpp"
#include "webhook/encoding.hpp"

namespace voxq {

namespace {

using json = nlohmann::json;

constexpr const char* kEventType = "speech.item.ready";

double milliseconds(double seconds) {
    return std::round(seconds * 1000) / 1000;
}

// The fields an event's data and a raw delivery's headers share.
json item_fields(const Task& task, std::size_t item, const ItemAudio& audio,
                 const std::string& sha256) {
    return {{"task_id", task.id},
            {"item_index", item},
            {"item_count", task.items.size()},
            {"attempt", task.attempt_count},
            {"voice_id", task.items[item].request.voice_id},
            {"format", audio.format},
            {"content_type", audio.content_type},
            {"sample_rate", audio.sample_rate},
            {"channels", audio.channels},
            {"duration_seconds", milliseconds(audio.duration_seconds)},
            {"bytes", audio.bytes.size()},
            {"sha256", sha256}};
}

// Raw deliveries: each field as a voxq-<name> header ("task_id" -> voxq-task-id;
// item_index and voice_id keep the names raw deliveries always had).
std::string header_name(const std::string& field) {
    if (field == "item_index") return "voxq-item";
    if (field == "voice_id") return "voxq-voice";
    std::string name = "voxq-" + field;
    std::replace(name.begin(), name.end(), '_', '-');
    return name;
}

std::string header_value(const json& value) {
    return value.is_string() ? value.get<std::string>() : value.dump();
}

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

[[noreturn]] void invalid(const std::string& message) {
    throw ValidationError("delivery: " + message);
}

const json& field(const json& data, const char* name, json::value_t type) {
    const auto it = data.find(name);
    const bool ok =
        it != data.end() && (it->type() == type ||
                             (type == json::value_t::number_unsigned && it->is_number_unsigned()));
    if (!ok) {
        const char* kind = type == json::value_t::string ? "a string" : "a non-negative integer";
        invalid(std::string("data.") + name + " is missing or not " + kind);
    }
    return *it;
}

// Raised inside the parser callback to stop at once.
struct BeyondBounds {};

bool is_json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// The audio where voxq's sender puts it: `,"audio_base64":"<base64>"}}` at the
// very end of the body. Cut out before parsing, so the parser does not copy
// half a megabyte character by character (most of a receiver's CPU went
// there). Taken only where the result is the one a whole parse gives: the
// quote after the comma can only open a key, the value holds no quote or
// escape, and the two braces close its object and the root, so it is the last
// key of an object directly under the root, which is where the parser's
// callback looks. `{,"audio_base64"...` is not JSON but `{}}` would be: such a
// body takes the whole parse.
struct TrailingAudio {
    std::size_t cut_from;  // the comma
    std::size_t cut_to;    // past the closing quote
    std::string_view base64;
};

std::optional<TrailingAudio> trailing_audio(std::string_view body) {
    constexpr std::string_view kKey = R"(,"audio_base64":")";
    std::size_t end = body.size();
    while (end > 0 && is_json_space(body[end - 1])) --end;
    if (end < 3 || body.substr(end - 3, 3) != R"("}})") return std::nullopt;
    const std::size_t close = end - 3;
    const std::size_t key = body.rfind(kKey, close);
    if (key == std::string_view::npos || key + kKey.size() > close) return std::nullopt;
    const std::string_view base64 = body.substr(key + kKey.size(), close - key - kKey.size());
    const bool plain = std::all_of(base64.begin(), base64.end(), [](char c) {
        return webhook::in_base64_alphabet(c) || c == '=';
    });
    if (!plain) return std::nullopt;
    std::size_t before = key;
    while (before > 0 && is_json_space(body[before - 1])) --before;
    if (before == 0 || body[before - 1] == '{') return std::nullopt;
    return TrailingAudio{key, close + 1, base64};
}

std::optional<ReceivedDelivery> unwrap_event(const std::string& body) {
    // One pass: nesting and value counts are bounded as the parser goes (nothing
    // legitimate nests or repeats; only the audio is large), and data's
    // audio_base64 (the last, if repeated) is moved out as it is read instead
    // of kept in the tree. An audio_base64 anywhere else is just a field.
    constexpr int kMaxDepth = 8;
    constexpr std::size_t kMaxEvents = 512;
    std::size_t events = 0;
    bool audio_next = false;
    std::string root_key;                      // the root's member being read
    std::optional<std::string> taken;          // data's audio the callback moved out
    std::optional<std::string_view> trailing;  // the audio cut out first
    std::string rest;                          // the body without it
    std::string_view text = body;
    if (const std::optional<TrailingAudio> cut = trailing_audio(body)) {
        rest.reserve(body.size() - (cut->cut_to - cut->cut_from));
        rest.append(body, 0, cut->cut_from).append(body, cut->cut_to);
        text = rest;
        trailing = cut->base64;
        events += 2;  // its key and value, as the whole parse counts them
    }
    const json::parser_callback_t take_audio = [&](int depth, json::parse_event_t event,
                                                   json& parsed) {
        if (depth > kMaxDepth || ++events > kMaxEvents) throw BeyondBounds{};
        if (event == json::parse_event_t::key) {
            if (depth == 1) root_key = parsed.get<std::string>();
            audio_next = depth == 2 && root_key == "data" && parsed == "audio_base64";
        } else if (event == json::parse_event_t::value && audio_next && depth == 2) {
            audio_next = false;
            if (parsed.is_string()) {
                taken = std::move(parsed.get_ref<std::string&>());
                return false;  // not kept in the tree
            }
        }
        return true;
    };
    json event;
    try {
        event = json::parse(text, take_audio, false);
    } catch (const BeyondBounds&) {
        return std::nullopt;  // JSON that no voxq event is
    }
    if (!event.is_object() || event.value("type", json()) != kEventType) return std::nullopt;
    // The trailing audio was in the root's last member: data's audio (and the
    // last of it) if that member is data, else a field of that member.
    if (trailing && root_key != "data") {
        json& owner = event[root_key];
        if (owner.is_object()) owner["audio_base64"] = std::string(*trailing);
        trailing.reset();
    }
    const auto data_it = event.find("data");
    if (data_it == event.end() || !data_it->is_object()) invalid("the event has no data object");
    json& data = *data_it;
    ReceivedDelivery d;
    d.task_id = field(data, "task_id", json::value_t::string).get<std::string>();
    const auto item =
        field(data, "item_index", json::value_t::number_unsigned).get<std::uint64_t>();
    if (item > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        invalid("data.item_index is out of range");
    d.item_index = static_cast<std::int64_t>(item);
    d.content_type = field(data, "content_type", json::value_t::string).get<std::string>();
    if (taken && !trailing) trailing = *taken;
    if (data.contains("audio_base64") && !trailing) invalid("data.audio_base64 is not a string");
    data.erase("audio_base64");  // what the callback left of it, if anything
    if (trailing) {
        std::optional<std::string> bytes = webhook::base64_decode(*trailing);
        if (!bytes) invalid("data.audio_base64 is not base64");
        const std::uint64_t size =
            field(data, "bytes", json::value_t::number_unsigned).get<std::uint64_t>();
        if (bytes->size() != size)
            invalid("the audio is " + std::to_string(bytes->size()) + " bytes, the event says " +
                    std::to_string(size));
        const std::string sha = field(data, "sha256", json::value_t::string).get<std::string>();
        if (webhook::sha256_hex(*bytes) != sha)
            invalid("the audio's SHA-256 differs from data.sha256");
        d.audio = std::move(*bytes);
    } else if (const auto url = data.find("audio_url"); url != data.end() && url->is_string()) {
        d.audio_url = url->get<std::string>();
    } else {
        invalid("data has neither audio_base64 nor audio_url");
    }
    d.event = dump(event);
    return d;
}

std::optional<ReceivedDelivery> unwrap_raw(const HeaderLookup& header, std::string& body) {
    ReceivedDelivery d;
    d.task_id = header("voxq-task-id");
    const std::string item = header("voxq-item");
    if (d.task_id.empty() && item.empty()) return std::nullopt;
    if (d.task_id.empty() || item.empty()) invalid("voxq-task-id and voxq-item go together");
    try {
        d.item_index = env::parse_integer("voxq-item", item);
    } catch (const ConfigError&) {
        invalid("voxq-item '" + truncate_utf8(item, 32) + "' is not an item index");
    }
    if (d.item_index < 0) invalid("voxq-item is negative");
    if (const std::string sha = header("voxq-sha256");
        !sha.empty() && sha != webhook::sha256_hex(body))
        invalid("the body's SHA-256 differs from voxq-sha256");
    d.content_type = header("content-type");
    d.audio_url = header("voxq-audio-url");  // object storage holds the audio; no body
    // The event a JSON delivery would have carried, from the headers.
    json data = json::object();
    struct Field {
        const char* name;
        bool numeric;
    };
    for (const Field f : {Field{"task_id", false},
                          {"item_index", true},
                          {"item_count", true},
                          {"attempt", true},
                          {"voice_id", false},
                          {"format", false},
                          {"content_type", false},
                          {"sample_rate", true},
                          {"channels", true},
                          {"duration_seconds", true},
                          {"bytes", true},
                          {"sha256", false}}) {
        const std::string_view field_name = f.name;
        const std::string value = field_name == "content_type" ? d.content_type
                                  : field_name == "bytes" && d.audio_url.empty()
                                      ? std::to_string(body.size())
                                      : header(header_name(f.name));
        if (value.empty()) continue;
        // A number stays a number only where the event has one ("task_id: 123"
        // is text); anything else is kept as the text it was.
        const json number = f.numeric ? json::parse(value, nullptr, false) : json();
        data[f.name] = number.is_number() ? number : json(to_valid_utf8(value));
    }
    if (!d.audio_url.empty()) {
        data["audio_url"] = to_valid_utf8(d.audio_url);
        data["audio_url_expires_at"] = to_valid_utf8(header("voxq-audio-url-expires-at"));
    }
    d.event = dump(json{{"type", kEventType}, {"data", data}});
    d.audio = std::move(body);
    return d;
}

}  // namespace

std::string webhook_message_id(const Task& task, std::size_t item) {
    char created[48];
    std::snprintf(created, sizeof created, "%.6f", task.created_at);
    const webhook::Sha256 digest = webhook::sha256("voxq webhook-id v1\n" + task.id + "\n" +
                                                   created + "\n" + std::to_string(item));
    // 20 bytes: 27 characters of URL-safe base64, unpadded.
    return "msg_" + webhook::base64url_encode(
                        std::string_view(reinterpret_cast<const char*>(digest.data()), 20));
}

WebhookRequest delivery_request(const Task& task, std::size_t item, ItemAudio audio,
                                WebhookPayload payload, double now, const AudioLink* link) {
    WebhookRequest request;
    request.url = task.items.at(item).response_url;
    request.message_id = webhook_message_id(task, item);
    const std::string sha = webhook::sha256_hex(audio.bytes);
    json fields = item_fields(task, item, audio, sha);
    if (payload == WebhookPayload::Raw) {
        for (const auto& [name, value] : fields.items()) {
            if (name != "content_type" && name != "bytes")  // the HTTP headers say those
                request.headers[header_name(name)] = header_value(value);
        }
        request.headers["voxq-event"] = kEventType;
        if (link != nullptr) {  // the audio is in object storage: the body is empty
            request.headers["voxq-audio-url"] = link->url;
            request.headers["voxq-audio-url-expires-at"] =
                detail::rfc3339_utc(static_cast<double>(link->expires_at));
            request.content_type = "application/octet-stream";
            return request;
        }
        request.content_type = std::move(audio.content_type);
        request.body = std::move(audio.bytes);
        return request;
    }
    request.content_type = "application/json";
    if (link != nullptr) {
        fields["audio_url"] = link->url;
        fields["audio_url_expires_at"] = detail::rfc3339_utc(static_cast<double>(link->expires_at));
    }
    // {"type", "timestamp", "data"} in that order, the audio last in data, encoded
    // straight into the body: no JSON string of it is built and escaped.
    std::string body = std::string(R"({"type":")") + kEventType + R"(","timestamp":")" +
                       detail::rfc3339_utc(now) + R"(","data":)" + dump(fields);
    if (link == nullptr) {
        body.pop_back();  // data's closing brace
        body.reserve(body.size() + 4 * (audio.bytes.size() + 2) / 3 + 24);
        body += R"(,"audio_base64":")";
        webhook::base64_append(body, audio.bytes);
        body += "\"}";
    }
    body += '}';
    request.body = std::move(body);
    return request;
}

std::optional<ReceivedDelivery> unwrap_delivery(const HeaderLookup& header, std::string& body) {
    if (media_type(header("content-type")) == "application/json") return unwrap_event(body);
    return unwrap_raw(header, body);
}

}  // namespace voxq
