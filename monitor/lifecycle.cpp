#include "lifecycle.hpp"

#include <iterator>

#include "enum_names.hpp"

namespace sempre {
namespace {

using A = Action;

// Columns: start, stop, stop-keep-wanted, restart, spawn-failed,
// uptime-reached, exited, backoff-elapsed, ready, kill-timeout,
// kill-grace-elapsed, drain-elapsed, adopt. Kill-timeout, kill-grace-elapsed
// and drain-elapsed come from timers of a run, which die with it: they
// cannot reach a state without one. Only a Monitor with no run adopts one.
constexpr Action kTable[kStateCount][kTriggerCount] = {
    // stopped
    {A::kStartFresh, A::kNone, A::kNone, A::kStartFresh, A::kNone, A::kNone, A::kNone, A::kNone,
     A::kNone, A::kNone, A::kNone, A::kNone, A::kTakeOver},
    // starting
    {A::kNone, A::kKill, A::kKill, A::kKillThenStart, A::kSpawnFailure, A::kMarkReady,
     A::kApplyPolicy, A::kNone, A::kMarkReady, A::kEscalate, A::kAbandonGroup, A::kStopDraining,
     A::kNone},
    // running
    {A::kNone, A::kKill, A::kKill, A::kKillThenStart, A::kNone, A::kNone, A::kApplyPolicy, A::kNone,
     A::kNone, A::kEscalate, A::kAbandonGroup, A::kStopDraining, A::kNone},
    // stopping
    {A::kStartAfterStop, A::kStayDown, A::kStayDown, A::kStartAfterStop, A::kNone, A::kNone,
     A::kFinishStop, A::kNone, A::kNone, A::kEscalate, A::kAbandonGroup, A::kStopDraining,
     A::kNone},
    // backoff
    {A::kNone, A::kCancelRestart, A::kCancelRestart, A::kStartFresh, A::kNone, A::kNone, A::kNone,
     A::kSpawn, A::kNone, A::kNone, A::kNone, A::kNone, A::kNone},
    // exited
    {A::kStartFresh, A::kForget, A::kForget, A::kStartFresh, A::kNone, A::kNone, A::kNone, A::kNone,
     A::kNone, A::kNone, A::kNone, A::kNone, A::kNone},
    // failed
    {A::kStartFresh, A::kForget, A::kForget, A::kStartFresh, A::kNone, A::kNone, A::kNone, A::kNone,
     A::kNone, A::kNone, A::kNone, A::kNone, A::kNone},
};

constexpr EnumName<Trigger> kTriggerNames[] = {
    {Trigger::kStart, "start"},
    {Trigger::kStop, "stop"},
    {Trigger::kStopKeepWanted, "stop-keep-wanted"},
    {Trigger::kRestart, "restart"},
    {Trigger::kSpawnFailed, "spawn-failed"},
    {Trigger::kUptimeReached, "uptime-reached"},
    {Trigger::kExited, "exited"},
    {Trigger::kBackoffElapsed, "backoff-elapsed"},
    {Trigger::kReady, "ready"},
    {Trigger::kKillTimeout, "kill-timeout"},
    {Trigger::kKillGraceElapsed, "kill-grace-elapsed"},
    {Trigger::kDrainElapsed, "drain-elapsed"},
    {Trigger::kAdopt, "adopt"},
};
static_assert(std::size(kTriggerNames) == kTriggerCount && in_declaration_order(kTriggerNames));

constexpr EnumName<Action> kActionNames[] = {
    {Action::kNone, "none"},
    {Action::kStartFresh, "start-fresh"},
    {Action::kSpawn, "spawn"},
    {Action::kKill, "kill"},
    {Action::kKillThenStart, "kill-then-start"},
    {Action::kStartAfterStop, "start-after-stop"},
    {Action::kStayDown, "stay-down"},
    {Action::kCancelRestart, "cancel-restart"},
    {Action::kMarkReady, "mark-ready"},
    {Action::kSpawnFailure, "spawn-failure"},
    {Action::kApplyPolicy, "apply-policy"},
    {Action::kFinishStop, "finish-stop"},
    {Action::kForget, "forget"},
    {Action::kEscalate, "escalate"},
    {Action::kAbandonGroup, "abandon-group"},
    {Action::kStopDraining, "stop-draining"},
    {Action::kTakeOver, "take-over"},
};
static_assert(std::size(kActionNames) == kActionCount && in_declaration_order(kActionNames));

}  // namespace

Action transition(State state, Trigger trigger) {
  return kTable[static_cast<int>(state)][static_cast<int>(trigger)];
}

std::optional<bool> wanted_after(Trigger trigger) {
  switch (trigger) {
    case Trigger::kStart:
    case Trigger::kRestart:
    case Trigger::kAdopt:
      return true;
    case Trigger::kStop:
      return false;
    default:
      return std::nullopt;
  }
}

const char* trigger_name(Trigger trigger) { return name_of(kTriggerNames, trigger, "unknown"); }

const char* action_name(Action action) { return name_of(kActionNames, action, "unknown"); }

}  // namespace sempre
