// The PostgreSQL store: many worker machines on one database.
//
// Every operation is one statement (or, for enqueue with dedup keys and the
// retry sweep, one transaction), run on a connection from a per-process pool.
// Claims use FOR UPDATE SKIP LOCKED, so concurrent workers never wait for each
// other's rows. Task counts are kept in per-connection shards of a counter table,
// updated in the same statement as the change they count.
#pragma once

#include <memory>
#include <string>

#include "voxq/config.hpp"
#include "voxq/store.hpp"

namespace voxq::pg {

// `conninfo`: a libpq URL (postgresql://...). Connects lazily.
// `logger` hears of the LISTEN connection lost and regained.
std::unique_ptr<Store> open_postgres_store(const std::string& conninfo, const QueueConfig& config,
                                           std::shared_ptr<Logger> logger);

}  // namespace voxq::pg
