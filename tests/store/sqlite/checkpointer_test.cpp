// The SQLite store's checkpointer: what keeps the write-ahead log bounded when
// its thread cannot (tests/store/sqlite/sqlite_store_test.cpp shows the thread
// moving the log into the database through the public API).
#include "store/sqlite/checkpointer.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "store/sqlite/connection.hpp"
#include "support/temp_dir.hpp"

namespace voxq::sqlite {
namespace {

// 200 commits of a 16 KB row each: ~1,000 pages of log if nothing checkpoints.
std::uintmax_t largest_log_while_writing(Connection& writer, const std::filesystem::path& wal) {
    writer.exec("CREATE TABLE t (x BLOB)");
    std::uintmax_t largest = 0;
    for (int i = 0; i < 200; ++i) {
        writer.exec("INSERT INTO t VALUES (randomblob(16384))");
        largest = std::max(largest, std::filesystem::file_size(wal));
    }
    return largest;
}

constexpr std::uintmax_t kFrameBytes = 4096 + 24;  // a page and its frame header

TEST(SqliteCheckpointer, AWriterWhoseCheckpointerCannotKeepUpCheckpointsItself) {
    voxq::testing::TempDir dir;
    Connection writer(dir.file("queue.db"), 5000, false);
    // Its own connection is to another file, so its checkpoints never move this
    // log: only the writer's fallback past `inline_pages` can.
    const Checkpointer checkpointer(std::make_unique<Connection>(dir.file("other.db"), 5000, false),
                                    writer, {.wake_pages = 10, .inline_pages = 50});
    const std::uintmax_t largest = largest_log_while_writing(writer, dir.file("queue.db-wal"));
    // A commit adds about five pages to a log that restarts from its beginning.
    EXPECT_LE(largest, (50 + 20) * kFrameBytes) << largest / kFrameBytes << " frames";
}

}  // namespace
}  // namespace voxq::sqlite
