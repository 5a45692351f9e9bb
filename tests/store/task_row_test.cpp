// The items column's persistent format (src/store/task_row.hpp): what the
// hand-written writer produces is JSON that reads back exactly, for any text a
// producer could send, and rows written by the earlier nlohmann writer read
// back the same.
#include "store/task_row.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace voxq {
namespace {

std::vector<TaskItem> hostile_items() {
    std::string controls;
    for (int c = 0; c < 0x20; ++c) controls += static_cast<char>(c);
    return {
        {{"plain text", "espeak.en-us", 1.0, "wav"}, "https://example.com/a"},
        {{"quote \" backslash \\ slash / del \x7f", "kokoro.af_heart", 0.25, "mp3"},
         "https://example.com/b?x=\"y\""},
        {{controls, "espeak.fr", 4.0, "opus"}, "https://example.com/c"},
        {{"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\x8A \xE2\x80\xA8", "espeak.de", 1.2345678901234567,
          "flac"},
         "https://example.com/d"},
        {{"", "espeak.en", 0.5, "pcm"}, ""},
    };
}

TEST(ItemsRow, EveryTextReadsBackExactly) {
    const std::vector<TaskItem> items = hostile_items();
    const std::string row = detail::items_to_row(items);
    ASSERT_FALSE(nlohmann::json::parse(row, nullptr, false).is_discarded()) << row;
    const std::vector<TaskItem> back = detail::items_from_row(row);
    ASSERT_EQ(back.size(), items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        EXPECT_EQ(back[i].request.text, items[i].request.text) << i;
        EXPECT_EQ(back[i].request.voice_id, items[i].request.voice_id) << i;
        EXPECT_EQ(back[i].request.speed, items[i].request.speed) << i;  // exact, not near
        EXPECT_EQ(back[i].request.format, items[i].request.format) << i;
        EXPECT_EQ(back[i].response_url, items[i].response_url) << i;
    }
}

TEST(ItemsRow, IsTheFormatTheGenericSerializerWrote) {
    // The earlier writer: nlohmann's DOM, sorted keys, compact.
    nlohmann::json old = nlohmann::json::array();
    for (const TaskItem& item : hostile_items()) {
        old.push_back({{"request",
                        {{"text", item.request.text},
                         {"voice_id", item.request.voice_id},
                         {"speed", item.request.speed},
                         {"format", item.request.format}}},
                       {"response_url", item.response_url}});
    }
    const std::string row = detail::items_to_row(hostile_items());
    EXPECT_EQ(nlohmann::json::parse(row), old) << "the stored shape changed";
    // Rows already on disk read back the same as new ones.
    const std::vector<TaskItem> from_old = detail::items_from_row(old.dump());
    const std::vector<TaskItem> from_new = detail::items_from_row(row);
    ASSERT_EQ(from_old.size(), from_new.size());
    for (std::size_t i = 0; i < from_old.size(); ++i) {
        EXPECT_EQ(from_old[i].request.text, from_new[i].request.text);
        EXPECT_EQ(from_old[i].request.speed, from_new[i].request.speed);
    }
}

TEST(ItemsRow, InvalidUtf8IsReplacedNotStoredAndTheRowStaysJson) {
    const std::vector<TaskItem> items{
        {{"bad \xC3 lead, \xFF byte, \xED\xA0\x80 surrogate", "espeak.en", 1.0, "wav"},
         "https://example.com/\x80"}};
    const std::string row = detail::items_to_row(items);
    const auto back = detail::items_from_row(row);
    ASSERT_EQ(back.size(), 1U);
    EXPECT_EQ(back[0].request.text.find('\xFF'), std::string::npos);
    EXPECT_NE(back[0].request.text.find("\xEF\xBF\xBD"), std::string::npos);
    EXPECT_EQ(back[0].response_url, "https://example.com/\xEF\xBF\xBD");
}

}  // namespace
}  // namespace voxq
