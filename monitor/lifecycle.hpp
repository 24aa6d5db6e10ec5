// The lifecycle of one app as one table, s6-supervise style: every signal,
// timer and command first becomes a Trigger; the table maps (state, trigger)
// to an Action; only actions change the state.
#pragma once

#include "sempre/events.hpp"

namespace sempre {

enum class Trigger {
  kStart,           // wanted up (start)
  kStop,            // wanted down (stop)
  kRestart,         // restart asked (by a command or a watched file)
  kSpawnFailed,     // the spawn of this run failed
  kUptimeReached,   // the run has lasted min-uptime
  kExited,          // the run is over: main process reaped, group empty, output drained
  kBackoffElapsed,  // the restart delay has passed
  kReady,           // the readiness check (--ready) passed
};
inline constexpr int kTriggerCount = 8;
const char* trigger_name(Trigger trigger);

enum class Action {
  kNone,              // nothing to do in this state
  kStartFresh,        // forget the crash tally, cancel a pending restart, spawn
  kSpawn,             // spawn the next run of a restart
  kKill,              // kill-signal to the group, SIGKILL after kill-timeout -> stopping
  kKillThenStart,     // as kKill, and spawn again once the group is gone
  kStartAfterStop,    // already stopping: spawn again once the group is gone
  kStayDown,          // already stopping: do not spawn again afterwards
  kCancelRestart,     // drop the pending restart -> stopped
  kMarkReady,         // -> running (on uptime only when there is no readiness check)
  kSpawnFailure,      // -> failed, or backoff when the failure was transient
  kApplyPolicy,       // the run ended on its own -> backoff, exited or failed
  kFinishStop,        // the stopped run is gone -> stopped, or spawn again
  kForget,            // exited or failed, and now wanted down -> stopped
};
const char* action_name(Action action);

// The transition table. Total: every (state, trigger) has an entry.
Action transition(State state, Trigger trigger);

}  // namespace sempre
