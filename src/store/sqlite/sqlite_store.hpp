// The SQLite store: one database file shared by any number of threads and
// processes on one machine.
//
// Writes: SQLite allows one writer at a time, so each process funnels its writes
// into one write connection with leader/follower group commit: the thread whose
// write is at the front of the queue takes every write queued behind it and runs
// them all in ONE transaction (BEGIN IMMEDIATE ... COMMIT, each write in its own
// SAVEPOINT): one sync for the whole group, and each caller still gets its own
// result or error (as in leveldb's DBImpl::Write). Other processes serialize on
// the database lock (busy timeout).
//
// Reads: a small pool of read connections (WAL readers never block the writer).
// For ":memory:" databases, which exist on one connection only, reads go through
// the write path too.
#pragma once

#include <memory>

#include "voxq/config.hpp"
#include "voxq/store.hpp"

namespace voxq::sqlite {

// `path`: a file path or ":memory:". Missing parent folders are created.
std::unique_ptr<Store> open_sqlite_store(const std::string& path, const QueueConfig& config);

}  // namespace voxq::sqlite
