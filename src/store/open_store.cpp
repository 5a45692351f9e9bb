#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "voxq/errors.hpp"
#include "voxq/store.hpp"

namespace voxq {

std::unique_ptr<Store> open_store(const QueueConfig& config, std::shared_ptr<Logger> logger) {
    if (!logger) logger = default_logger();
    const DatabaseLocation where = parse_database_url(config.database_url);
    switch (where.kind) {
        case DatabaseLocation::Kind::Sqlite:
            return sqlite::open_sqlite_store(where.target, config);
        case DatabaseLocation::Kind::Postgres:
            return pg::open_postgres_store(where.target, config, std::move(logger));
    }
    throw ConfigError("database_url: unknown database kind");
}

}  // namespace voxq
