// What worker tests share: a webhook sender allowed to reach the loopback test
// receivers, and a manual clock that starts at the real time (webhook timestamps
// must pass receivers' tolerance checks).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "voxq/clock.hpp"
#include "voxq/webhook.hpp"

namespace voxq::test {

inline std::shared_ptr<WebhookSender> loopback_sender(std::vector<std::string> secrets = {},
                                                      double total_timeout = 5) {
    WebhookConfig c;
    c.allow_nets.push_back(IpNetwork::parse("127.0.0.0/8"));
    c.secrets = std::move(secrets);
    c.total_timeout = total_timeout;
    return std::make_shared<WebhookSender>(c);
}

inline std::shared_ptr<ManualClock> clock_at_now() {
    return std::make_shared<ManualClock>(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
}

}  // namespace voxq::test
