#include "store/task_row.hpp"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "util/text.hpp"
#include "voxq/errors.hpp"

namespace voxq::detail {

using nlohmann::json;

namespace {

// A JSON string: quotes, backslashes and control characters escaped, and any
// byte that is not part of valid UTF-8 replaced by U+FFFD (text is valid from
// entry on; this keeps a row readable anyway). Runs that need nothing are
// copied whole: this is most of the bytes an enqueue writes.
void append_json_string(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    std::size_t run = 0;  // start of the bytes not yet copied
    std::size_t i = 0;
    auto flush = [&] { out.append(s.data() + run, i - run); };
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            ++i;
            continue;
        }
        if (c >= 0x80) {
            const std::size_t n = utf8_sequence_length(s.substr(i));
            if (n > 0) {
                i += n;
                continue;
            }
            flush();
            out += "\xEF\xBF\xBD";
            run = ++i;
            continue;
        }
        flush();
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                out += "\\u00";
                out += kHex[c >> 4];
                out += kHex[c & 0xF];
        }
        run = ++i;
    }
    flush();
    out += '"';
}

}  // namespace

// Written by hand, not through nlohmann::json: building the DOM and dumping it
// was about 15% of an enqueue (issue 16). The format is unchanged, so rows
// written by either read back the same (tests/store: ItemsRow*).
std::string items_to_row(const std::vector<TaskItem>& items) {
    std::string out;
    std::size_t size = 2;
    for (const TaskItem& item : items) {
        size += 96 + item.request.text.size() + item.request.voice_id.size() +
                item.request.format.size() + item.response_url.size();
    }
    out.reserve(size);
    out += '[';
    for (const TaskItem& item : items) {
        if (out.size() > 1) out += ',';
        out += R"({"request":{"format":)";
        append_json_string(out, item.request.format);
        out += R"(,"speed":)";
        char number[32];
        const double speed = std::isfinite(item.request.speed) ? item.request.speed : 1.0;
        const auto [end, ec] = std::to_chars(number, number + sizeof number, speed);
        out.append(number, ec == std::errc() ? end : number);
        out += R"(,"text":)";
        append_json_string(out, item.request.text);
        out += R"(,"voice_id":)";
        append_json_string(out, item.request.voice_id);
        out += R"(},"response_url":)";
        append_json_string(out, item.response_url);
        out += '}';
    }
    out += ']';
    return out;
}

std::vector<TaskItem> items_from_row(std::string_view row) {
    const json j = json::parse(row, nullptr, false);
    if (j.is_discarded() || !j.is_array()) throw StoreError("stored items are not JSON", false);
    std::vector<TaskItem> items;
    items.reserve(j.size());
    try {
        for (const json& e : j) {
            const json& req = e.at("request");
            items.push_back(
                TaskItem{{req.at("text").get<std::string>(), req.at("voice_id").get<std::string>(),
                          req.value("speed", 1.0), req.value("format", "wav")},
                         e.at("response_url").get<std::string>()});
        }
    } catch (const json::exception& e) {
        throw StoreError(std::string("stored items are malformed: ") + e.what(), false);
    }
    return items;
}

}  // namespace voxq::detail
