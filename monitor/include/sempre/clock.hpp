// The time seam. A Monitor reads the time and arms one-shot timers only
// through a Clock, so the lifecycle can run in tests on a clock the test
// advances by hand (tests/monitor/fake_clock.hpp).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "sempre/export.hpp"

namespace sempre {

// A pending one-shot timer. Destroying it cancels it: the callback never runs
// after the Timer is gone.
class SEMPRE_EXPORT Timer {
 public:
  Timer() = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  virtual ~Timer() = default;
};

class SEMPRE_EXPORT Clock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;

  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  virtual ~Clock() = default;

  virtual TimePoint now() const = 0;
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  // Calls `fire` once, `after` from now, from the clock's executor (never
  // from inside this call), unless the returned Timer was destroyed first.
  virtual std::unique_ptr<Timer> start_timer(Duration after, std::function<void()> fire) = 0;
};

// The real clock: steady_clock, and asio timers on `executor`.
SEMPRE_EXPORT std::unique_ptr<Clock> make_asio_clock(boost::asio::any_io_executor executor);

}  // namespace sempre
