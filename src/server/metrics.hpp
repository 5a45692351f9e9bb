// /metrics in the Prometheus text exposition format (version 0.0.4).
#pragma once

#include <string>
#include <vector>

#include "voxq/queue.hpp"
#include "voxq/worker.hpp"

namespace voxq {

// Tasks per queue and state, the age of each queue's oldest due task, and, when
// `worker` is given, its histograms and webhook outcomes.
[[nodiscard]] std::string render_metrics(const std::vector<QueueOverview>& queues,
                                         bool store_healthy, const WorkerCounters* worker);

}  // namespace voxq
