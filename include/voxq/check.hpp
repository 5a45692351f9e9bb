// File: voxq/check.hpp
//
// What a consistency check of a store reports (`voxq check`,
// WorkerQueue::check_store, Store::check).
#pragma once

#include <string>

namespace voxq {

// One problem found. `kind` says which check: "schema", "integrity", "counters"
// or "state"; `detail` says what is wrong and where.
struct StoreFinding {
    std::string kind;
    std::string detail;
};

}  // namespace voxq
