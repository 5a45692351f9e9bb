#include "voxq/json.hpp"

#include <nlohmann/json.hpp>

#include "util/text.hpp"
#include "voxq/errors.hpp"

namespace voxq {

using nlohmann::json;

namespace {

json item_to_json(const TaskItem& item) {
    return {{"request",
             {{"text", item.request.text},
              {"voice_id", item.request.voice_id},
              {"speed", item.request.speed},
              {"format", item.request.format}}},
            {"response_url", item.response_url}};
}

json task_object(const Task& t, bool with_history) {
    json items = json::array();
    for (const TaskItem& item : t.items) items.push_back(item_to_json(item));
    json out = {{"id", t.id},
                {"state", std::string(to_string(t.state))},
                {"queue", t.queue},
                {"priority", t.priority},
                {"schedule_at", t.schedule_at},
                {"items", std::move(items)},
                {"attempt_count", t.attempt_count},
                {"items_delivered", t.items_delivered},
                {"max_attempts", t.max_attempts},
                {"last_error", t.last_error},
                {"dedup_key", t.dedup_key.empty() ? json(nullptr) : json(t.dedup_key)},
                {"created_at", t.created_at},
                {"updated_at", t.updated_at}};
    if (with_history) {
        out["heartbeat_at"] = t.heartbeat_at;
        json history = json::array();
        for (const TaskError& e : t.error_history) {
            history.push_back({{"attempt", e.attempt}, {"at", e.at}, {"message", e.message}});
        }
        out["error_history"] = std::move(history);
    }
    return out;
}

class FieldReader {
  public:
    FieldReader(std::size_t index, std::string prefix)
        : index_(index), prefix_(std::move(prefix)) {}

    [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
        const std::string where = field.empty() ? "" : prefix_ + field + ": ";
        throw ValidationError("task " + std::to_string(index_) + ": " + where + problem);
    }
    void only(const json& obj, std::initializer_list<const char*> allowed,
              const std::string& what) const {
        if (!obj.is_object()) fail(what, "must be a JSON object");
        for (const auto& [key, _] : obj.items()) {
            bool known = false;
            for (const char* a : allowed) known = known || key == a;
            if (!known) fail(key, "is not a known field");
        }
    }
    std::string str(const json& obj, const char* key, std::string fallback) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return fallback;
        if (!it->is_string()) fail(key, "must be a string");
        return it->get<std::string>();
    }
    double number(const json& obj, const char* key, double fallback) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return fallback;
        if (!it->is_number()) fail(key, "must be a number");
        return it->get<double>();
    }
    std::int64_t integer(const json& obj, const char* key, std::int64_t fallback) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return fallback;
        if (!it->is_number_integer()) fail(key, "must be an integer");
        // An unsigned JSON integer beyond int64 would wrap: refused, never stored.
        if (it->is_number_unsigned() &&
            it->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
            fail(key, "is out of range");
        return it->get<std::int64_t>();
    }

  private:
    std::size_t index_;
    std::string prefix_;
};

TaskItem item_from_json(const json& j, const FieldReader& r) {
    r.only(j, {"request", "response_url"}, "item");
    TaskItem item;
    auto req = j.find("request");
    if (req == j.end()) r.fail("request", "is required");
    r.only(*req, {"text", "voice_id", "speed", "format"}, "request");
    item.request.text = r.str(*req, "text", "");
    item.request.voice_id = r.str(*req, "voice_id", "");
    item.request.speed = r.number(*req, "speed", 1.0);
    item.request.format = r.str(*req, "format", "wav");
    item.response_url = r.str(j, "response_url", "");
    return item;
}

}  // namespace

std::string task_to_json(const Task& task, bool with_history) {
    return task_object(task, with_history).dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

Task task_from_value(const json& j, std::size_t index) {
    const FieldReader r(index, "");
    r.only(
        j,
        {"id", "state", "queue", "priority", "schedule_at", "items", "attempt_count",
         "max_attempts", "last_error", "dedup_key", "created_at", "updated_at", "items_delivered"},
        "");
    Task t;
    t.id = r.str(j, "id", "");
    const std::string state = r.str(j, "state", "PENDING");
    const auto parsed = parse_task_state(state);
    if (!parsed) r.fail("state", "'" + truncate_utf8(state, 32) + "' is not a task state");
    t.state = *parsed;
    t.queue = r.str(j, "queue", "default");
    t.priority = r.integer(j, "priority", 0);
    t.schedule_at = r.number(j, "schedule_at", 0);
    t.attempt_count = r.integer(j, "attempt_count", 0);
    t.max_attempts = r.integer(j, "max_attempts", 0);
    t.last_error = r.str(j, "last_error", "");
    t.dedup_key = r.str(j, "dedup_key", "");
    t.created_at = r.number(j, "created_at", 0);
    t.updated_at = r.number(j, "updated_at", 0);
    auto items = j.find("items");
    if (items == j.end()) r.fail("items", "is required");
    if (!items->is_array()) r.fail("items", "must be an array");
    for (std::size_t i = 0; i < items->size(); ++i) {
        const FieldReader ir(index, "items[" + std::to_string(i) + "].");
        t.items.push_back(item_from_json((*items)[i], ir));
    }
    return t;
}

}  // namespace

Task task_from_json(std::string_view text, std::size_t index) {
    const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) FieldReader(index, "").fail("", "is not valid JSON");
    return task_from_value(j, index);
}

TaskBody tasks_from_json_body(std::string_view body, std::size_t max_tasks) {
    const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw ValidationError("body: is not valid JSON");
    const json* list = nullptr;
    if (j.is_array()) list = &j;
    if (j.is_object() && j.contains("tasks")) {
        if (j.size() != 1) throw ValidationError("body: {\"tasks\": [...]} takes no other field");
        list = &j["tasks"];
    }
    TaskBody out;
    if (list == nullptr) {
        if (!j.is_object()) {
            throw ValidationError(
                "body: must be a task object, an array of tasks or {\"tasks\": [...]}");
        }
        out.single = true;
        out.tasks.push_back(task_from_value(j, 0));
        return out;
    }
    if (!list->is_array()) throw ValidationError("tasks: must be an array");
    if (list->empty()) throw ValidationError("tasks: at least one task is needed");
    if (list->size() > max_tasks) {
        throw ValidationError("tasks: at most " + std::to_string(max_tasks) + " per request");
    }
    out.tasks.reserve(list->size());
    for (std::size_t i = 0; i < list->size(); ++i)
        out.tasks.push_back(task_from_value((*list)[i], i));
    return out;
}

std::string task_page_to_json(const TaskPage& page) {
    json tasks = json::array();
    for (const Task& t : page.tasks) tasks.push_back(task_object(t, false));
    return json{{"tasks", std::move(tasks)},
                {"next_cursor", page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}}
        .dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string stats_to_json(const std::map<std::string, std::int64_t>& stats) {
    return json(stats).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace voxq
