// A Clock whose time moves only when the test says so.
#pragma once

#include <map>
#include <memory>

#include "sempre/clock.hpp"

namespace sempre::test {

class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return now_; }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(now_.time_since_epoch()));
  }

  std::unique_ptr<Timer> start_timer(Duration after, std::function<void()> fire) override {
    const std::uint64_t id = ++last_id_;
    timers_->emplace(std::make_pair(now_ + after, id), std::move(fire));
    return std::make_unique<FakeTimer>(timers_, now_ + after, id);
  }

  // Moves time forward by `d`, firing every timer that falls due, in order.
  void advance(Duration d) {
    const TimePoint until = now_ + d;
    while (!timers_->empty() && timers_->begin()->first.first <= until) {
      auto it = timers_->begin();
      now_ = it->first.first;
      auto fire = std::move(it->second);
      timers_->erase(it);
      fire();
    }
    now_ = until;
  }

  // The delay until the next pending timer, if any.
  std::optional<Duration> next_timer() const {
    if (timers_->empty()) return std::nullopt;
    return timers_->begin()->first.first - now_;
  }
  std::size_t pending() const { return timers_->size(); }

 private:
  using Timers = std::map<std::pair<TimePoint, std::uint64_t>, std::function<void()>>;

  class FakeTimer final : public Timer {
   public:
    FakeTimer(std::shared_ptr<Timers> timers, TimePoint at, std::uint64_t id)
        : timers_(std::move(timers)), key_(at, id) {}
    ~FakeTimer() override { timers_->erase(key_); }

   private:
    std::shared_ptr<Timers> timers_;
    std::pair<TimePoint, std::uint64_t> key_;
  };

  TimePoint now_{std::chrono::hours(1000)};
  std::uint64_t last_id_ = 0;
  std::shared_ptr<Timers> timers_ = std::make_shared<Timers>();
};

}  // namespace sempre::test
