#include "restart_policy.hpp"

#include <algorithm>

namespace sempre {

RestartPolicy::RestartPolicy(const MonitorOptions& options)
    : mode_(options.restart),
      max_restarts_(options.max_restarts),
      min_uptime_(options.min_uptime),
      restart_delay_(options.restart_delay),
      backoff_max_(options.backoff_max) {}

Millis RestartPolicy::backoff_for(int attempt) const {
  Millis delay = std::max(kInitialBackoff, restart_delay_);
  for (int i = 1; i < attempt && delay < backoff_max_; ++i) delay *= 2;
  return std::min(delay, backoff_max_);
}

RestartDecision RestartPolicy::on_exit(const ExitStatus& status, Millis uptime) {
  using Kind = RestartDecision::Kind;
  const bool crash_loop = uptime < min_uptime_;
  if (mode_ == RestartMode::kNever) {
    return {Kind::kExit, Millis{0}, 0, "restart policy is never"};
  }
  if (mode_ == RestartMode::kOnFailure && status.success()) {
    return {Kind::kExit, Millis{0}, 0, "exited successfully and restart policy is on-failure"};
  }
  if (!crash_loop) {
    crashes_ = 0;
    return {Kind::kRestart, restart_delay_, 0, {}};
  }
  ++crashes_;
  if (max_restarts_ && crashes_ > *max_restarts_) {
    return {Kind::kFail, Millis{0}, crashes_ - 1,
            "gave up after " + std::to_string(*max_restarts_) +
                " restarts: every run ended within min-uptime " + format_duration(min_uptime_)};
  }
  return {Kind::kRestart, backoff_for(crashes_), crashes_, {}};
}

}  // namespace sempre
