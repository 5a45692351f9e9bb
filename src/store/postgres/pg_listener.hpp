// Push wake-ups for the PostgreSQL store: LISTEN on the queue's channel on a
// connection of its own, calling `on_work` for every NOTIFY (and once after
// each (re)connect, for what was made due while nobody listened). Reconnects
// after a second when the server goes away (telling `logger` once per outage);
// returns when `stop` is requested.
#pragma once

#include <functional>
#include <stop_token>
#include <string>

#include "store/postgres/pg_connection.hpp"
#include "voxq/log.hpp"

namespace voxq::pg {

void listen_for_work(const PgTarget& target, const std::string& channel,
                     const std::stop_token& stop, const std::function<void()>& on_work,
                     Logger& logger);

}  // namespace voxq::pg
