// The lifecycle of one app as one table, s6-supervise style: every command,
// timer and process notification first becomes a Trigger; the table maps
// (state, trigger) to an Action; only actions change the observed state.
// The wanted state (up or down) is apart: only the commands change it
// (wanted_after).
#pragma once

#include <optional>

#include "sempre/events.hpp"

namespace sempre {

enum class Trigger {
  kStart,             // wanted up (start)
  kStop,              // wanted down (stop)
  kStopKeepWanted,    // stopped, but still wanted up (stop_keep_wanted)
  kRestart,           // restart asked (by a command or a watched file)
  kSpawnFailed,       // the spawn of this run failed
  kUptimeReached,     // the run has lasted min-uptime
  kExited,            // the run is over: main process reaped, group empty, output drained
  kBackoffElapsed,    // the restart delay has passed
  kReady,             // the readiness check (--ready) passed
  kKillTimeout,       // kill-timeout passed since the kill-signal, and the group is still there
  kKillGraceElapsed,  // the group outlived SIGKILL by the kill grace (stuck in the kernel)
  kDrainElapsed,      // the group is gone, but its output stayed open past the drain limit
  kAdopt,             // wanted up, and a run of an earlier supervisor is taken over (adopt)
};
inline constexpr int kTriggerCount = 13;
static_assert(kTriggerCount == static_cast<int>(Trigger::kAdopt) + 1);
const char* trigger_name(Trigger trigger);

enum class Action {
  kNone,            // nothing to do in this state
  kStartFresh,      // forget the crash tally, cancel a pending restart, spawn
  kSpawn,           // spawn the next run of a restart
  kKill,            // kill-signal to the group, SIGKILL after kill-timeout -> stopping
  kKillThenStart,   // as kKill, and spawn again once the group is gone
  kStartAfterStop,  // already stopping: spawn again once the group is gone
  kStayDown,        // already stopping: do not spawn again afterwards
  kCancelRestart,   // drop the pending restart -> stopped
  kMarkReady,       // -> running (on uptime only when there is no readiness check)
  kSpawnFailure,    // -> failed, or backoff when the failure was transient
  kApplyPolicy,     // the run ended on its own -> backoff, exited or failed
  kFinishStop,      // the stopped run is gone -> stopped, or spawn again
  kForget,          // exited or failed, and now wanted down -> stopped
  kEscalate,        // SIGKILL to the group; the kill grace starts
  kAbandonGroup,    // the group is taken for gone: the run may be over
  kStopDraining,    // the output is no longer waited for: the run may be over
  kTakeOver,        // the adopted run becomes the current one -> running
};
inline constexpr int kActionCount = 17;
static_assert(kActionCount == static_cast<int>(Action::kTakeOver) + 1);
const char* action_name(Action action);

// The transition table. Total: every (state, trigger) has an entry.
Action transition(State state, Trigger trigger);

// What a trigger makes of the wanted state: true (up), false (down), or
// nullopt (unchanged: every trigger but the commands).
std::optional<bool> wanted_after(Trigger trigger);

}  // namespace sempre
