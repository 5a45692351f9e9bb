#include "store/postgres/pg_listener.hpp"

#include <chrono>
#include <thread>

#include "store/postgres/pg_connection.hpp"
#include "voxq/errors.hpp"

namespace voxq::pg {

namespace {
// How long the LISTEN connection may stay silent before it is pinged.
constexpr auto kPingAfter = std::chrono::seconds(10);
}  // namespace

void listen_for_work(const PgTarget& target, const std::string& channel,
                     const std::stop_token& stop, const std::function<void()>& on_work,
                     Logger& logger) {
    // Logged once per outage, not once per reconnect attempt.
    bool away = false;
    while (!stop.stop_requested()) {
        try {
            PgConnection conn(target);
            conn.exec(("LISTEN " + conn.quote_identifier(channel)).c_str());
            if (away) logger.info("PostgreSQL reachable again: listening for new work");
            away = false;
            on_work();  // anything made due while we were not listening
            auto heard_at = std::chrono::steady_clock::now();
            while (!stop.stop_requested() && conn.healthy()) {
                if (conn.wait_readable(200)) {
                    heard_at = std::chrono::steady_clock::now();
                    for (bool any = conn.consume_notifications(); any;
                         any = conn.consume_notifications()) {
                        on_work();
                    }
                } else if (std::chrono::steady_clock::now() - heard_at > kPingAfter) {
                    // A silent connection may be a dead one (a peer gone without
                    // a word): ask, within the query deadline.
                    conn.exec("SELECT 1");
                    heard_at = std::chrono::steady_clock::now();
                    if (conn.consume_notifications()) on_work();
                }
            }
            if (!stop.stop_requested()) {
                logger.warning(
                    "PostgreSQL LISTEN connection lost; reconnecting (workers poll meanwhile)");
                away = true;
            }
        } catch (const StoreError& e) {
            // Server away: try again shortly. Workers keep polling meanwhile.
            if (!away) {
                logger.warning("PostgreSQL unreachable for LISTEN; retrying every second",
                               {{"error", e.what()}});
            }
            away = true;
        }
        for (int i = 0; i < 10 && !stop.stop_requested(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
}

}  // namespace voxq::pg
