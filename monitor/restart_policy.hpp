// RestartPolicy: what happens after a run ends on its own (DESIGN "Restart
// policy"). Pure logic with no clock of its own, so every rule has a unit test.
#pragma once

#include <string>

#include "sempre/events.hpp"
#include "sempre/options.hpp"

namespace sempre {

struct RestartDecision {
  enum class Kind { kRestart, kExit, kFail };
  Kind kind = Kind::kExit;
  Millis delay{0};     // kRestart: wait this long first
  int attempt = 0;     // kRestart: consecutive crash-loop restarts so far, this one included
  std::string reason;  // kExit, kFail: why not restarted
};

class RestartPolicy {
 public:
  // The first crash-loop delay, unless restart-delay is larger.
  static constexpr Millis kInitialBackoff{100};

  explicit RestartPolicy(const MonitorOptions& options);

  // Decides after a run that ended on its own after `uptime`. A run shorter
  // than min-uptime is a crash loop: consecutive ones back off exponentially
  // and, past max-restarts of them, the decision is kFail. A run that lasted
  // resets the tally and restarts after restart-delay.
  RestartDecision on_exit(const ExitStatus& status, Millis uptime);

  // Forgets the crash-loop tally: a manual start or restart.
  void reset() { crashes_ = 0; }
  int consecutive_crashes() const { return crashes_; }

  // Delay before crash-loop restart number `attempt` (1-based).
  Millis backoff_for(int attempt) const;

 private:
  RestartMode mode_;
  std::optional<int> max_restarts_;
  Millis min_uptime_;
  Millis restart_delay_;
  Millis backoff_max_;
  int crashes_ = 0;
};

}  // namespace sempre
