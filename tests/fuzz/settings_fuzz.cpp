// Environment settings and database URLs: any value is taken or refused with a
// ConfigError, never a crash, and a refused URL's message holds no password.
#include <cstdint>
#include <map>
#include <string>

#include "voxq/config.hpp"
#include "voxq/errors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    static const char* const kVariables[] = {"QUEUE_DATABASE_URL",
                                             "QUEUE_MAX_ATTEMPTS",
                                             "QUEUE_VISIBILITY_TIMEOUT",
                                             "QUEUE_RETRY_BACKOFF_MULTIPLIER",
                                             "QUEUE_RETRY_BASE_DELAY",
                                             "QUEUE_MAX_RETRY_DELAY",
                                             "QUEUE_BATCH_SIZE",
                                             "VOXQ_SQLITE_SYNCHRONOUS",
                                             "VOXQ_SQLITE_BUSY_TIMEOUT_MS",
                                             "VOXQ_MAX_TEXT_LENGTH",
                                             "VOXQ_ERROR_HISTORY",
                                             "VOXQ_PG_SCHEMA",
                                             "VOXQ_PG_POOL_SIZE",
                                             "VOXQ_MAX_STALLS"};
    const char* variable = kVariables[data[0] % (sizeof kVariables / sizeof *kVariables)];
    std::string value(reinterpret_cast<const char*>(data + 1), size - 1);
    // Only the password this harness puts into a URL must never come back (a
    // value that spells it out itself is quoted, as it should be).
    const bool url = std::string(variable) == "QUEUE_DATABASE_URL" &&
                     value.find("SECRETPW") == std::string::npos;
    if (std::string(variable) == "QUEUE_DATABASE_URL")
        value = ((value.size() & 1) != 0 ? "postgresq://u:SECRETPW@" : "sqlite:///") + value;
    try {
        (void)voxq::QueueConfig::from_map({{variable, value}});
    } catch (const voxq::ConfigError& e) {
        if (url && std::string(e.what()).find("SECRETPW") != std::string::npos) __builtin_trap();
    }
    return 0;
}
