#include "lifecycle.hpp"

namespace sempre {
namespace {

using A = Action;

// Columns: start, stop, restart, spawn-failed, uptime-reached, exited,
// backoff-elapsed, ready.
constexpr Action kTable[kStateCount][kTriggerCount] = {
    // stopped
    {A::kStartFresh, A::kNone, A::kStartFresh, A::kNone, A::kNone, A::kNone, A::kNone, A::kNone},
    // starting
    {A::kNone, A::kKill, A::kKillThenStart, A::kSpawnFailure, A::kMarkReady, A::kApplyPolicy,
     A::kNone, A::kMarkReady},
    // running
    {A::kNone, A::kKill, A::kKillThenStart, A::kNone, A::kNone, A::kApplyPolicy, A::kNone, A::kNone},
    // stopping
    {A::kStartAfterStop, A::kStayDown, A::kStartAfterStop, A::kNone, A::kNone, A::kFinishStop,
     A::kNone, A::kNone},
    // backoff
    {A::kNone, A::kCancelRestart, A::kStartFresh, A::kNone, A::kNone, A::kNone, A::kSpawn, A::kNone},
    // exited
    {A::kStartFresh, A::kForget, A::kStartFresh, A::kNone, A::kNone, A::kNone, A::kNone, A::kNone},
    // failed
    {A::kStartFresh, A::kForget, A::kStartFresh, A::kNone, A::kNone, A::kNone, A::kNone, A::kNone},
};

}  // namespace

Action transition(State state, Trigger trigger) {
  return kTable[static_cast<int>(state)][static_cast<int>(trigger)];
}

const char* trigger_name(Trigger trigger) {
  switch (trigger) {
    case Trigger::kStart: return "start";
    case Trigger::kStop: return "stop";
    case Trigger::kRestart: return "restart";
    case Trigger::kSpawnFailed: return "spawn-failed";
    case Trigger::kUptimeReached: return "uptime-reached";
    case Trigger::kExited: return "exited";
    case Trigger::kBackoffElapsed: return "backoff-elapsed";
    case Trigger::kReady: return "ready";
  }
  return "unknown";
}

const char* action_name(Action action) {
  switch (action) {
    case Action::kNone: return "none";
    case Action::kStartFresh: return "start-fresh";
    case Action::kSpawn: return "spawn";
    case Action::kKill: return "kill";
    case Action::kKillThenStart: return "kill-then-start";
    case Action::kStartAfterStop: return "start-after-stop";
    case Action::kStayDown: return "stay-down";
    case Action::kCancelRestart: return "cancel-restart";
    case Action::kMarkReady: return "mark-ready";
    case Action::kSpawnFailure: return "spawn-failure";
    case Action::kApplyPolicy: return "apply-policy";
    case Action::kFinishStop: return "finish-stop";
    case Action::kForget: return "forget";
  }
  return "unknown";
}

}  // namespace sempre
