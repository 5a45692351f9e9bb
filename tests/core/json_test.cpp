#include "voxq/json.hpp"

#include <gtest/gtest.h>

#include "voxq/errors.hpp"

namespace voxq {
namespace {

TEST(TaskJson, RoundTripsEveryField) {
    Task t;
    t.id = "abc";
    t.queue = "q";
    t.priority = 3;
    t.schedule_at = 12.5;
    t.dedup_key = "k";
    t.max_attempts = 4;
    t.items.push_back({{"Hi", "espeak.en-us", 1.25, "mp3"}, "http://127.0.0.1:1/x"});
    const Task back = task_from_json(task_to_json(t));
    EXPECT_EQ(back.id, "abc");
    EXPECT_EQ(back.queue, "q");
    EXPECT_EQ(back.priority, 3);
    EXPECT_DOUBLE_EQ(back.schedule_at, 12.5);
    EXPECT_EQ(back.dedup_key, "k");
    EXPECT_EQ(back.max_attempts, 4);
    ASSERT_EQ(back.items.size(), 1U);
    EXPECT_EQ(back.items[0].request.voice_id, "espeak.en-us");
    EXPECT_DOUBLE_EQ(back.items[0].request.speed, 1.25);
    EXPECT_EQ(back.items[0].request.format, "mp3");
    EXPECT_EQ(back.items[0].response_url, "http://127.0.0.1:1/x");
}

TEST(TaskJson, OnlyItemsIsRequired) {
    const Task t = task_from_json(
        R"({"items":[{"request":{"text":"a","voice_id":"kokoro.af_heart"},"response_url":"https://x/"}]})");
    EXPECT_EQ(t.state, TaskState::PENDING);
    EXPECT_EQ(t.queue, "default");
    EXPECT_TRUE(t.id.empty());
    EXPECT_EQ(t.items[0].request.format, "wav");
}

TEST(TaskJson, RefusesWhatItDoesNotUnderstand) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"not json", "is not valid JSON"},
        {"[]", "must be a JSON object"},
        {R"({})", "items: is required"},
        {R"({"items":{}})", "items: must be an array"},
        {R"({"items":[],"priority":"high"})", "priority: must be an integer"},
        {R"({"items":[],"scheduled_at":1})", "scheduled_at: is not a known field"},
        {R"({"items":[],"state":"DONE"})", "state: 'DONE' is not a task state"},
        {R"({"items":[{"request":{"text":1}}]})", "items[0].text: must be a string"},
        {R"({"items":[{"response_url":"x"}]})", "items[0].request: is required"},
    };
    for (const auto& [json, expected] : cases) {
        try {
            (void)task_from_json(json, 4);
            ADD_FAILURE() << json;
        } catch (const ValidationError& e) {
            EXPECT_NE(std::string(e.what()).find("task 4: " + expected), std::string::npos)
                << e.what();
        }
    }
}

}  // namespace
}  // namespace voxq
