// TaskState in SQL text, by name: queries say "state = " VOXQ_SQL_PENDING, not
// "state = 0". The integers are the persistent format (voxq/task.hpp: never
// renumbered); the asserts tie each spelling to the enum. Macros, because SQL
// text is built from string literals at compile time.
#pragma once

#include "voxq/task.hpp"

#define VOXQ_SQL_PENDING "0"
#define VOXQ_SQL_PROCESSING "1"
#define VOXQ_SQL_COMPLETED "2"
#define VOXQ_SQL_RETRYABLE "3"
#define VOXQ_SQL_CANCELLED "4"
#define VOXQ_SQL_DISCARDED "5"

static_assert(static_cast<int>(voxq::TaskState::PENDING) == 0);
static_assert(static_cast<int>(voxq::TaskState::PROCESSING) == 1);
static_assert(static_cast<int>(voxq::TaskState::COMPLETED) == 2);
static_assert(static_cast<int>(voxq::TaskState::RETRYABLE) == 3);
static_assert(static_cast<int>(voxq::TaskState::CANCELLED) == 4);
static_assert(static_cast<int>(voxq::TaskState::DISCARDED) == 5);
