// File: voxq/clock.hpp
//
// Time as the queue sees it. The queue reads time only through a Clock, so tests
// move time (lease expiry, backoff, schedules) without sleeping.
// Thread-safety: both clocks may be used from any number of threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace voxq {

class Clock {
  public:
    virtual ~Clock() = default;
    // Microseconds since the Unix epoch.
    [[nodiscard]] virtual std::int64_t now_us() const = 0;
    [[nodiscard]] double now_seconds() const { return static_cast<double>(now_us()) / 1e6; }
};

// The wall clock (std::chrono::system_clock).
class SystemClock final : public Clock {
  public:
    [[nodiscard]] std::int64_t now_us() const override;
    // One shared instance.
    static std::shared_ptr<Clock> instance();
};

// A clock that only moves when told to. Starts at `start_us`.
class ManualClock final : public Clock {
  public:
    explicit ManualClock(std::int64_t start_us = 1'700'000'000'000'000) : now_(start_us) {}
    [[nodiscard]] std::int64_t now_us() const override { return now_.load(); }
    void advance_seconds(double seconds) {
        now_.fetch_add(static_cast<std::int64_t>(seconds * 1e6));
    }
    void set_us(std::int64_t us) { now_.store(us); }

  private:
    std::atomic<std::int64_t> now_;
};

}  // namespace voxq
