#include "store/sqlite/sqlite_store.hpp"
#include "voxq/errors.hpp"
#include "voxq/store.hpp"

namespace voxq {

std::unique_ptr<Store> open_store(const QueueConfig& config) {
    const DatabaseLocation where = parse_database_url(config.database_url);
    switch (where.kind) {
        case DatabaseLocation::Kind::Sqlite:
            return sqlite::open_sqlite_store(where.target, config);
        case DatabaseLocation::Kind::Postgres:
            throw ConfigError("database_url: PostgreSQL is not built into this voxq yet (" +
                              std::string("use sqlite:///path.db)"));
    }
    throw ConfigError("database_url: unknown database kind");
}

}  // namespace voxq
