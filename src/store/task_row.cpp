#include "store/task_row.hpp"

#include <nlohmann/json.hpp>

#include "voxq/errors.hpp"

namespace voxq::detail {

using nlohmann::json;

std::string items_to_row(const std::vector<TaskItem>& items) {
    json out = json::array();
    for (const TaskItem& item : items) {
        out.push_back({{"request",
                        {{"text", item.request.text},
                         {"voice_id", item.request.voice_id},
                         {"speed", item.request.speed},
                         {"format", item.request.format}}},
                       {"response_url", item.response_url}});
    }
    // Text is valid UTF-8 from entry on; "replace" keeps a row writable anyway.
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
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
