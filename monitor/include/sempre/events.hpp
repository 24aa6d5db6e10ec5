// The lifecycle vocabulary shared by the Monitor, the daemon and the CLI:
// observed states, how a run ended, and the typed events a Monitor emits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "sempre/export.hpp"
#include "sempre/units.hpp"

namespace sempre {

// The observed state of one app (DESIGN "Lifecycle").
enum class State {
  kStopped,   // not running, not wanted
  kStarting,  // spawned, not yet ready (has not stayed up min-uptime)
  kRunning,   // ready
  kStopping,  // kill-signal sent, waiting for the group to go
  kBackoff,   // waiting to restart
  kExited,    // finished, and the policy says not to restart
  kFailed,    // gave up: max restarts reached, or cannot be executed
};
inline constexpr int kStateCount = 7;
SEMPRE_EXPORT const char* state_name(State state);  // "stopped", "starting", ...

// How a run ended.
struct SEMPRE_EXPORT ExitStatus {
  bool signaled = false;
  int code = 0;  // exit code, or the signal number when signaled

  bool success() const { return !signaled && code == 0; }
  // "code 3", "signal KILL"
  std::string describe() const;
  // The shell's convention: the code, or 128 + signal.
  int shell_code() const { return signaled ? 128 + code : code; }
  bool operator==(const ExitStatus&) const = default;
};

enum class EventType {
  kStart,
  kReady,
  kExit,
  kRestart,
  kStop,
  kFailed,
  kWatch,
  kRotate,
  kLogError,    // a log could not be written: its output is being dropped
  kLogResumed,  // writing that log works again
};
SEMPRE_EXPORT const char* event_name(EventType type);  // "start", "ready", ...

// One lifecycle event. Fields that do not apply to a type keep their defaults.
struct Event {
  EventType type = EventType::kStart;
  std::chrono::system_clock::time_point time;
  State state = State::kStopped;   // the state after the transition
  pid_t pid = 0;                   // start, ready, exit, stop
  std::optional<ExitStatus> exit;  // exit
  Millis uptime{0};                // exit: how long the run lasted
  int attempt = 0;                 // restart: consecutive crash-loop restarts (0: not a crash loop)
  Millis delay{0};                 // restart: wait before the next spawn
  std::string reason;              // restart, stop, failed: why
  std::string path;                // watch: the path that changed; rotate: the file rotated;
                                   // log-error, log-resumed: the log file
  std::uint64_t dropped = 0;       // log-resumed: bytes of output dropped meanwhile
};

// "exit pid=123 code 1 uptime=20ms", for logs and `sempre run`.
SEMPRE_EXPORT std::string describe(const Event& event);

}  // namespace sempre
