// The library's logger (voxq/log.hpp): one event a line, JSON that parses
// whatever bytes a message holds, text with control characters escaped, levels
// filtered, settings refused by name.
#include "voxq/log.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "voxq/errors.hpp"

namespace voxq {
namespace {

// Everything a logger wrote to a pipe, as lines.
class Pipe {
  public:
    Pipe() { EXPECT_EQ(::pipe(fds_), 0); }
    ~Pipe() {
        if (fds_[1] >= 0) ::close(fds_[1]);
        ::close(fds_[0]);
    }
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    [[nodiscard]] int fd() const { return fds_[1]; }
    std::vector<std::string> lines() {
        ::close(fds_[1]);
        fds_[1] = -1;
        std::string all;
        char buf[4096];
        for (ssize_t n; (n = ::read(fds_[0], buf, sizeof buf)) > 0;) {
            all.append(buf, static_cast<std::size_t>(n));
        }
        EXPECT_TRUE(all.empty() || all.back() == '\n') << "every event ends its line";
        std::vector<std::string> out;
        std::istringstream in(all);
        for (std::string line; std::getline(in, line);) out.push_back(line);
        return out;
    }

  private:
    int fds_[2] = {-1, -1};
};

TEST(Log, JsonLinesParseWithTsLevelMsgAndFieldsWhateverTheBytes) {
    Pipe pipe;
    StreamLogger log({LogLevel::Debug, LogFormat::Json}, pipe.fd());
    log.warning("attempt failed", {{"task_id", "01ABC"}, {"attempt", 3}, {"seconds", 1.5}});
    // A receiver's answer: quotes, a newline, ESC, invalid UTF-8, a NUL.
    log.error(std::string("bad \"answer\"\n\x1b[2J\xff\xfe", 19) + std::string(1, '\0'),
              {{"error", "\x80tail"}});
    const auto lines = pipe.lines();
    ASSERT_EQ(lines.size(), 2U);
    const auto first = nlohmann::json::parse(lines[0]);
    EXPECT_EQ(first["level"], "warning");
    EXPECT_EQ(first["msg"], "attempt failed");
    EXPECT_EQ(first["task_id"], "01ABC");
    EXPECT_EQ(first["attempt"], 3);
    EXPECT_DOUBLE_EQ(first["seconds"].get<double>(), 1.5);
    EXPECT_EQ(first["ts"].get<std::string>().size(), 24U) << first["ts"];
    const auto second = nlohmann::json::parse(lines[1]);
    EXPECT_EQ(second["level"], "error");
    EXPECT_NE(second["msg"].get<std::string>().find("bad \"answer\"\n"), std::string::npos);
}

TEST(Log, TextLinesEscapeControlCharactersAndQuoteValuesWithSpaces) {
    Pipe pipe;
    StreamLogger log({LogLevel::Info, LogFormat::Text}, pipe.fd());
    log.warning("line one\nforged line\x1b[31m", {{"error", "HTTP 503 busy"}, {"attempt", 2}});
    const auto lines = pipe.lines();
    ASSERT_EQ(lines.size(), 1U) << "a newline in a message cannot forge a second event";
    EXPECT_EQ(lines[0].find('\x1b'), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find(" warning line one\\nforged line"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find(R"( | error="HTTP 503 busy" attempt=2)"), std::string::npos)
        << lines[0];
}

TEST(Log, EventsBelowTheLevelAreNotWrittenAndHugeValuesAreCut) {
    Pipe pipe;
    StreamLogger log({LogLevel::Warning, LogFormat::Json}, pipe.fd());
    EXPECT_FALSE(log.enabled(LogLevel::Info));
    EXPECT_TRUE(log.enabled(LogLevel::Error));
    log.debug("no");
    log.info("no");
    log.warning("yes", {{"error", std::string(1'000'000, 'x')}});
    const auto lines = pipe.lines();
    ASSERT_EQ(lines.size(), 1U);
    EXPECT_LT(lines[0].size(), 4096U) << "a megabyte of error text is cut, not logged";
    EXPECT_EQ(nlohmann::json::parse(lines[0])["msg"], "yes");
}

TEST(Log, SettingsAreReadFromTheEnvironmentAndBadOnesRefusedByName) {
    ::setenv("VOXQ_LOG_LEVEL", "debug", 1);
    ::setenv("VOXQ_LOG_FORMAT", "json", 1);
    const LogConfig good = LogConfig::from_env();
    EXPECT_EQ(good.level, LogLevel::Debug);
    EXPECT_EQ(good.format, LogFormat::Json);
    ::setenv("VOXQ_LOG_LEVEL", "verbose", 1);
    try {
        (void)LogConfig::from_env();
        ADD_FAILURE() << "VOXQ_LOG_LEVEL=verbose was accepted";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("VOXQ_LOG_LEVEL: 'verbose'"), std::string::npos)
            << e.what();
    }
    ::setenv("VOXQ_LOG_LEVEL", "info", 1);
    ::setenv("VOXQ_LOG_FORMAT", "yaml", 1);
    EXPECT_THROW((void)LogConfig::from_env(), ConfigError);
    ::unsetenv("VOXQ_LOG_LEVEL");
    ::unsetenv("VOXQ_LOG_FORMAT");
    const LogConfig defaults = LogConfig::from_env();
    EXPECT_EQ(defaults.level, LogLevel::Info);
    EXPECT_EQ(defaults.format, LogFormat::Text);
}

}  // namespace
}  // namespace voxq
