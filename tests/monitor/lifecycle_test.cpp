// The lifecycle table and the restart policy as the Monitor applies them, on
// a fake clock and a fake launcher: no process, no sleep.
#include "lifecycle.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <iterator>
#include <optional>

#include "monitor/fake_clock.hpp"
#include "monitor/fake_launcher.hpp"
#include "sempre/monitor.hpp"

namespace sempre {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;
using test::FakeLauncher;

class Lifecycle : public ::testing::Test {
 protected:
  void make(MonitorOptions o) {
    o.argv = {"/bin/true"};
    monitor_ =
        std::make_unique<Monitor>(io_.get_executor(), o, Monitor::Seams{&clock_, &launcher_});
    monitor_->on_event([this](const Event& e) { events_.push_back(e); });
  }
  void make() { make(MonitorOptions{}); }

  // Runs what the io_context has ready (pipe EOFs, posted callbacks).
  void settle() {
    for (int i = 0; i < 100; ++i) {
      io_.restart();
      if (io_.poll() == 0) return;
    }
  }

  void crash(Millis uptime = 0ms) {
    clock_.advance(uptime);
    launcher_.exit_latest(ExitStatus{false, 1});
    settle();
  }

  State state() const { return monitor_->status().state; }

  std::vector<EventType> types() const {
    std::vector<EventType> t;
    for (const auto& e : events_) t.push_back(e.type);
    return t;
  }

  std::vector<Millis> restart_delays() const {
    std::vector<Millis> d;
    for (const auto& e : events_) {
      if (e.type == EventType::kRestart) d.push_back(e.delay);
    }
    return d;
  }

  boost::asio::io_context io_;
  FakeClock clock_;
  FakeLauncher launcher_;
  std::unique_ptr<Monitor> monitor_;
  std::vector<Event> events_;
};

TEST(TransitionTable, EveryStateAnswersEveryTrigger) {
  for (int s = 0; s < kStateCount; ++s) {
    for (int t = 0; t < kTriggerCount; ++t) {
      EXPECT_STRNE(action_name(transition(static_cast<State>(s), static_cast<Trigger>(t))),
                   "unknown");
    }
  }
}

// Every cell of the table, decided here a second time. A new state or
// trigger does not compile until this table has a row or a column for it,
// so no cell is left to a default nobody chose.
TEST(TransitionTable, EveryCellIsAnExplicitDecision) {
  using A = Action;
  using T = Trigger;
  constexpr T kColumns[] = {
      T::kStart,       T::kStop,          T::kStopKeepWanted,   T::kRestart,
      T::kSpawnFailed, T::kUptimeReached, T::kExited,           T::kBackoffElapsed,
      T::kReady,       T::kKillTimeout,   T::kKillGraceElapsed, T::kDrainElapsed,
      T::kAdopt};
  static_assert(std::size(kColumns) == kTriggerCount);
  constexpr A kExpected[][std::size(kColumns)] = {
      // stopped
      {A::kStartFresh, A::kNone, A::kNone, A::kStartFresh, A::kNone, A::kNone, A::kNone, A::kNone,
       A::kNone, A::kNone, A::kNone, A::kNone, A::kTakeOver},
      // starting
      {A::kNone, A::kKill, A::kKill, A::kKillThenStart, A::kSpawnFailure, A::kMarkReady,
       A::kApplyPolicy, A::kNone, A::kMarkReady, A::kEscalate, A::kAbandonGroup, A::kStopDraining,
       A::kNone},
      // running
      {A::kNone, A::kKill, A::kKill, A::kKillThenStart, A::kNone, A::kNone, A::kApplyPolicy,
       A::kNone, A::kNone, A::kEscalate, A::kAbandonGroup, A::kStopDraining, A::kNone},
      // stopping
      {A::kStartAfterStop, A::kStayDown, A::kStayDown, A::kStartAfterStop, A::kNone, A::kNone,
       A::kFinishStop, A::kNone, A::kNone, A::kEscalate, A::kAbandonGroup, A::kStopDraining,
       A::kNone},
      // backoff
      {A::kNone, A::kCancelRestart, A::kCancelRestart, A::kStartFresh, A::kNone, A::kNone, A::kNone,
       A::kSpawn, A::kNone, A::kNone, A::kNone, A::kNone, A::kNone},
      // exited
      {A::kStartFresh, A::kForget, A::kForget, A::kStartFresh, A::kNone, A::kNone, A::kNone,
       A::kNone, A::kNone, A::kNone, A::kNone, A::kNone, A::kNone},
      // failed
      {A::kStartFresh, A::kForget, A::kForget, A::kStartFresh, A::kNone, A::kNone, A::kNone,
       A::kNone, A::kNone, A::kNone, A::kNone, A::kNone, A::kNone},
  };
  static_assert(std::size(kExpected) == kStateCount);
  for (int s = 0; s < kStateCount; ++s) {
    for (int t = 0; t < kTriggerCount; ++t) {
      ASSERT_EQ(static_cast<int>(kColumns[t]), t);
      const auto state = static_cast<State>(s);
      EXPECT_EQ(transition(state, kColumns[t]), kExpected[s][t])
          << state_name(state) << " x " << trigger_name(kColumns[t]) << ": "
          << action_name(transition(state, kColumns[t]));
    }
  }
}

TEST(TransitionTable, EveryTriggerAndActionHasAName) {
  for (int t = 0; t < kTriggerCount; ++t) {
    EXPECT_STRNE(trigger_name(static_cast<Trigger>(t)), "unknown") << t;
  }
  for (int a = 0; a < kActionCount; ++a) {
    EXPECT_STRNE(action_name(static_cast<Action>(a)), "unknown") << a;
  }
  EXPECT_STREQ(trigger_name(Trigger::kKillTimeout), "kill-timeout");
  EXPECT_STREQ(action_name(Action::kEscalate), "escalate");
}

TEST(TransitionTable, OnlyCommandsChangeTheWantedState) {
  for (int t = 0; t < kTriggerCount; ++t) {
    const auto trigger = static_cast<Trigger>(t);
    std::optional<bool> expected;
    if (trigger == Trigger::kStart || trigger == Trigger::kRestart || trigger == Trigger::kAdopt) {
      expected = true;
    }
    if (trigger == Trigger::kStop) expected = false;
    EXPECT_EQ(wanted_after(trigger), expected) << trigger_name(trigger);
  }
}

TEST(TransitionTable, StopKeepWantedStopsAsStopDoes) {
  for (int s = 0; s < kStateCount; ++s) {
    const auto state = static_cast<State>(s);
    EXPECT_EQ(transition(state, Trigger::kStopKeepWanted), transition(state, Trigger::kStop))
        << state_name(state);
  }
}

TEST(TransitionTable, StopIsHonouredInEveryState) {
  EXPECT_EQ(transition(State::kStopped, Trigger::kStop), Action::kNone);
  EXPECT_EQ(transition(State::kStarting, Trigger::kStop), Action::kKill);
  EXPECT_EQ(transition(State::kRunning, Trigger::kStop), Action::kKill);
  EXPECT_EQ(transition(State::kStopping, Trigger::kStop), Action::kStayDown);
  EXPECT_EQ(transition(State::kBackoff, Trigger::kStop), Action::kCancelRestart);
  EXPECT_EQ(transition(State::kExited, Trigger::kStop), Action::kForget);
  EXPECT_EQ(transition(State::kFailed, Trigger::kStop), Action::kForget);
}

TEST_F(Lifecycle, StartSpawnsAndEmitsStart) {
  make();
  ASSERT_TRUE(monitor_->start().ok());
  EXPECT_EQ(state(), State::kStarting);
  EXPECT_EQ(monitor_->status().pid, launcher_.latest()->pid);
  ASSERT_EQ(types(), std::vector<EventType>{EventType::kStart});
  EXPECT_EQ(events_[0].pid, launcher_.latest()->pid);
}

TEST_F(Lifecycle, BecomesRunningOnceItHasLastedMinUptime) {
  make();
  ASSERT_TRUE(monitor_->start().ok());
  clock_.advance(999ms);
  EXPECT_EQ(state(), State::kStarting);
  clock_.advance(1ms);
  EXPECT_EQ(state(), State::kRunning);
  EXPECT_EQ(types(), (std::vector<EventType>{EventType::kStart, EventType::kReady}));
}

TEST_F(Lifecycle, WithAReadinessCheckUptimeAloneDoesNotMakeItRunning) {
  MonitorOptions o;
  o.ready = "exec:probe";
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_EQ(launcher_.children.size(), 2u);  // the app, and its first check
  EXPECT_EQ(launcher_.requests[1].argv, (std::vector<std::string>{"/bin/sh", "-c", "probe"}));
  clock_.advance(5s);
  EXPECT_EQ(state(), State::kStarting);
  launcher_.exit(launcher_.children[1], ExitStatus{false, 1});  // not up yet: tried again later
  clock_.advance(*clock_.next_timer());
  ASSERT_EQ(launcher_.children.size(), 3u);
  launcher_.exit(launcher_.children[2], ExitStatus{false, 0});
  EXPECT_EQ(state(), State::kRunning);
  EXPECT_EQ(events_.back().type, EventType::kReady);
}

TEST_F(Lifecycle, ExitEventCarriesStatusAndUptime) {
  make();
  ASSERT_TRUE(monitor_->start().ok());
  clock_.advance(1500ms);
  launcher_.exit_latest(ExitStatus{true, SIGSEGV});
  settle();
  auto it = std::find_if(events_.begin(), events_.end(),
                         [](const Event& e) { return e.type == EventType::kExit; });
  ASSERT_NE(it, events_.end());
  EXPECT_EQ(it->exit, (ExitStatus{true, SIGSEGV}));
  EXPECT_EQ(it->uptime, 1500ms);
  EXPECT_EQ(monitor_->status().last_exit, (ExitStatus{true, SIGSEGV}));
}

TEST_F(Lifecycle, RunThatLastedRestartsAfterRestartDelay) {
  MonitorOptions o;
  o.restart_delay = 3s;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  crash(5s);
  EXPECT_EQ(state(), State::kBackoff);
  EXPECT_EQ(restart_delays(), std::vector<Millis>{3s});
  clock_.advance(2999ms);
  EXPECT_EQ(launcher_.children.size(), 1u);
  clock_.advance(1ms);
  EXPECT_EQ(launcher_.children.size(), 2u);
  EXPECT_EQ(state(), State::kStarting);
  EXPECT_EQ(monitor_->status().restarts, 1);
}

TEST_F(Lifecycle, BacksOffExponentiallyWhileCrashLooping) {
  make();
  ASSERT_TRUE(monitor_->start().ok());
  for (int i = 0; i < 5; ++i) {
    crash();
    clock_.advance(*clock_.next_timer());
  }
  EXPECT_EQ(restart_delays(), (std::vector<Millis>{100ms, 200ms, 400ms, 800ms, 1600ms}));
  EXPECT_EQ(launcher_.children.size(), 6u);
}

TEST_F(Lifecycle, BackoffIsCappedAtBackoffMax) {
  MonitorOptions o;
  o.backoff_max = 300ms;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  for (int i = 0; i < 4; ++i) {
    crash();
    clock_.advance(*clock_.next_timer());
  }
  EXPECT_EQ(restart_delays(), (std::vector<Millis>{100ms, 200ms, 300ms, 300ms}));
}

TEST_F(Lifecycle, FailsAfterExactlyMaxRestartsCrashLoopRestarts) {
  MonitorOptions o;
  o.max_restarts = 3;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  for (int i = 0; i < 3; ++i) {
    crash();
    ASSERT_EQ(state(), State::kBackoff);
    clock_.advance(*clock_.next_timer());
  }
  crash();
  EXPECT_EQ(state(), State::kFailed);
  EXPECT_EQ(launcher_.children.size(), 4u);  // the first run and 3 restarts
  EXPECT_EQ(monitor_->status().restarts, 3);
  EXPECT_EQ(events_.back().type, EventType::kFailed);
  EXPECT_FALSE(clock_.next_timer().has_value());
}

TEST_F(Lifecycle, LongRunResetsTheCrashLoopTally) {
  MonitorOptions o;
  o.max_restarts = 1;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  crash();
  clock_.advance(*clock_.next_timer());
  crash(10s);
  clock_.advance(*clock_.next_timer());
  crash();
  EXPECT_EQ(state(), State::kBackoff);
  EXPECT_EQ(restart_delays().back(), 100ms);
}

TEST_F(Lifecycle, NeverPolicyEndsInExited) {
  MonitorOptions o;
  o.restart = RestartMode::kNever;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  crash(5s);
  EXPECT_EQ(state(), State::kExited);
  EXPECT_FALSE(clock_.next_timer().has_value());
  EXPECT_EQ(launcher_.children.size(), 1u);
}

TEST_F(Lifecycle, OnFailurePolicyRestartsOnlyAfterAFailure) {
  MonitorOptions o;
  o.restart = RestartMode::kOnFailure;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  crash(5s);
  EXPECT_EQ(state(), State::kBackoff);
  clock_.advance(*clock_.next_timer());
  clock_.advance(5s);
  launcher_.exit_latest(ExitStatus{false, 0});
  settle();
  EXPECT_EQ(state(), State::kExited);
}

TEST_F(Lifecycle, StopSignalsTheGroupAndEscalatesToSigkillAfterKillTimeout) {
  MonitorOptions o;
  o.kill_timeout = 2s;
  make(o);
  launcher_.exit_on_kill_signal = false;
  ASSERT_TRUE(monitor_->start().ok());
  bool done = false;
  monitor_->stop([&] { done = true; });
  EXPECT_EQ(state(), State::kStopping);
  EXPECT_EQ(launcher_.latest()->signals, std::vector<int>{SIGTERM});
  clock_.advance(1999ms);
  EXPECT_EQ(state(), State::kStopping);
  clock_.advance(1ms);
  settle();
  EXPECT_EQ(launcher_.latest()->signals, (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_EQ(state(), State::kStopped);
  EXPECT_TRUE(done);
  EXPECT_EQ(events_.back().type, EventType::kStop);
}

// After SIGKILL the group is given the kill grace (5 s), then taken for
// gone: a process stuck in the kernel does not hold the app in stopping.
TEST_F(Lifecycle, GroupThatOutlivesSigkillIsTakenForGoneAfterTheGrace) {
  MonitorOptions o;
  o.kill_timeout = 1s;
  make(o);
  launcher_.stuck = true;
  ASSERT_TRUE(monitor_->start().ok());
  bool done = false;
  monitor_->stop([&] { done = true; });
  clock_.advance(1s);
  EXPECT_EQ(launcher_.latest()->signals, (std::vector<int>{SIGTERM, SIGKILL}));
  clock_.advance(4999ms);
  EXPECT_EQ(state(), State::kStopping);
  // The main process is reaped (it was a zombie), but its group stays.
  launcher_.exit(launcher_.latest(), ExitStatus{true, SIGKILL}, /*leftover=*/true);
  clock_.advance(1ms);
  settle();
  EXPECT_EQ(state(), State::kStopped);
  EXPECT_TRUE(done);
}

// Output held open by a process that left the group is waited for at most
// the drain limit (1 s) before the run is declared over.
TEST_F(Lifecycle, OutputHeldOpenDelaysTheEndOfARunByTheDrainLimitAtMost) {
  MonitorOptions o;
  o.restart = RestartMode::kNever;
  make(o);
  launcher_.hold_output = true;
  ASSERT_TRUE(monitor_->start().ok());
  crash(2s);
  EXPECT_EQ(state(), State::kRunning);
  clock_.advance(999ms);
  settle();
  EXPECT_EQ(state(), State::kRunning);
  clock_.advance(1ms);
  settle();
  EXPECT_EQ(state(), State::kExited);
  EXPECT_EQ(events_.back().type, EventType::kExit);
}

TEST_F(Lifecycle, StopKeepWantedStopsTheChildButItStaysWantedUp) {
  make();
  ASSERT_TRUE(monitor_->start().ok());
  bool done = false;
  monitor_->stop_keep_wanted([&] { done = true; });
  settle();
  EXPECT_TRUE(done);
  EXPECT_EQ(state(), State::kStopped);
  EXPECT_TRUE(monitor_->status().wanted_up);
  EXPECT_EQ(launcher_.latest()->signals, std::vector<int>{SIGTERM});
  EXPECT_EQ(events_.back().type, EventType::kStop);
  // Nothing brings it back by itself...
  EXPECT_FALSE(clock_.next_timer().has_value());
  EXPECT_EQ(launcher_.children.size(), 1u);
  // ...but start() does, and stop() then wants it down.
  ASSERT_TRUE(monitor_->start().ok());
  EXPECT_EQ(launcher_.children.size(), 2u);
  monitor_->stop();
  settle();
  EXPECT_FALSE(monitor_->status().wanted_up);
}

TEST_F(Lifecycle, StopKeepWantedDuringBackoffCancelsTheRestartAndStaysWanted) {
  make();
  ASSERT_TRUE(monitor_->start().ok());
  crash();
  ASSERT_EQ(state(), State::kBackoff);
  monitor_->stop_keep_wanted();
  EXPECT_EQ(state(), State::kStopped);
  EXPECT_TRUE(monitor_->status().wanted_up);
  EXPECT_FALSE(clock_.next_timer().has_value());
}

TEST_F(Lifecycle, StopOfAnAppKeptWantedWantsItDown) {
  make();
  ASSERT_TRUE(monitor_->start().ok());
  monitor_->stop_keep_wanted();
  settle();
  ASSERT_TRUE(monitor_->status().wanted_up);
  bool done = false;
  monitor_->stop([&] { done = true; });
  settle();
  EXPECT_TRUE(done);
  EXPECT_FALSE(monitor_->status().wanted_up);
}

TEST_F(Lifecycle, MonitorMadeWantedUpReportsItAndSpawnsNothingBeforeStart) {
  MonitorOptions o;
  o.argv = {"/bin/true"};
  Monitor monitor(io_.get_executor(), o, Wanted::kUp, Monitor::Seams{&clock_, &launcher_});
  EXPECT_TRUE(monitor.status().wanted_up);
  EXPECT_EQ(monitor.status().state, State::kStopped);
  EXPECT_TRUE(launcher_.children.empty());
  ASSERT_TRUE(monitor.start().ok());
  EXPECT_EQ(launcher_.children.size(), 1u);
  Monitor down(io_.get_executor(), o, Wanted::kDown, Monitor::Seams{&clock_, &launcher_});
  EXPECT_FALSE(down.status().wanted_up);
}

TEST_F(Lifecycle, StopOfAChildThatExitsOnKillSignalSendsNoSigkill) {
  MonitorOptions o;
  o.kill_signal = SIGINT;
  make(o);
  launcher_.kill_signal = SIGINT;
  ASSERT_TRUE(monitor_->start().ok());
  monitor_->stop();
  settle();
  EXPECT_EQ(state(), State::kStopped);
  EXPECT_EQ(launcher_.latest()->signals, std::vector<int>{SIGINT});
  EXPECT_FALSE(clock_.next_timer().has_value());
}

TEST_F(Lifecycle, StopDuringBackoffCancelsTheRestart) {
  make();
  ASSERT_TRUE(monitor_->start().ok());
  crash();
  ASSERT_EQ(state(), State::kBackoff);
  bool done = false;
  monitor_->stop([&] { done = true; });
  settle();
  EXPECT_EQ(state(), State::kStopped);
  EXPECT_TRUE(done);
  EXPECT_FALSE(clock_.next_timer().has_value());
  clock_.advance(1h);
  EXPECT_EQ(launcher_.children.size(), 1u);
}

TEST_F(Lifecycle, ManualRestartNeverCountsAsACrashLoop) {
  MonitorOptions o;
  o.max_restarts = 1;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  for (int i = 0; i < 5; ++i) {
    monitor_->restart();
    settle();
    ASSERT_EQ(state(), State::kStarting);
  }
  EXPECT_EQ(monitor_->status().crash_restarts, 0);
  EXPECT_EQ(monitor_->status().restarts, 5);
  EXPECT_EQ(launcher_.children.size(), 6u);
  crash();
  EXPECT_EQ(state(), State::kBackoff);  // the first crash loop, not the sixth
}

TEST_F(Lifecycle, ManualRestartDuringBackoffSpawnsAtOnce) {
  make();
  ASSERT_TRUE(monitor_->start().ok());
  crash();
  crash();
  ASSERT_EQ(state(), State::kBackoff);
  monitor_->restart();
  EXPECT_EQ(state(), State::kStarting);
  EXPECT_EQ(monitor_->status().crash_restarts, 0);
}

TEST_F(Lifecycle, UnexecutableProgramFailsAtOnceWithTheOsError) {
  make();
  launcher_.fail_next_errno = ENOENT;
  auto st = monitor_->start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("No such file or directory"), std::string::npos);
  EXPECT_EQ(state(), State::kFailed);
  EXPECT_EQ(events_.back().type, EventType::kFailed);
  EXPECT_FALSE(clock_.next_timer().has_value());
}

TEST_F(Lifecycle, TransientSpawnFailureIsRetriedWithBackoff) {
  make();
  launcher_.fail_next_errno = EAGAIN;
  EXPECT_TRUE(monitor_->start().ok());
  EXPECT_EQ(state(), State::kBackoff);
  clock_.advance(*clock_.next_timer());
  EXPECT_EQ(state(), State::kStarting);
}

TEST_F(Lifecycle, LeftoverGroupMembersAreStoppedBeforeTheRestart) {
  MonitorOptions o;
  o.kill_timeout = 1s;
  make(o);
  launcher_.exit_on_kill_signal = false;
  ASSERT_TRUE(monitor_->start().ok());
  clock_.advance(5s);
  launcher_.exit_latest(ExitStatus{false, 1}, /*leftover=*/true);
  settle();
  // The main process is gone, but a worker of its group is not: no restart yet.
  EXPECT_EQ(state(), State::kRunning);
  EXPECT_EQ(launcher_.latest()->signals, std::vector<int>{SIGTERM});
  clock_.advance(1s);
  settle();
  EXPECT_EQ(launcher_.children[0]->signals, (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_EQ(launcher_.children.size(), 2u);  // restarted only once the group was gone
  EXPECT_EQ(state(), State::kStarting);
}

TEST_F(Lifecycle, StartWhileStoppingStartsAgainAfterTheStop) {
  make();
  launcher_.exit_on_kill_signal = false;
  ASSERT_TRUE(monitor_->start().ok());
  monitor_->stop();
  ASSERT_EQ(state(), State::kStopping);
  ASSERT_TRUE(monitor_->start().ok());
  launcher_.exit(launcher_.latest(), ExitStatus{true, SIGTERM});
  settle();
  EXPECT_EQ(state(), State::kStarting);
  EXPECT_EQ(launcher_.children.size(), 2u);
}

TEST_F(Lifecycle, StopWhileRestartingStaysDown) {
  make();
  launcher_.exit_on_kill_signal = false;
  ASSERT_TRUE(monitor_->start().ok());
  monitor_->restart();
  monitor_->stop();
  launcher_.exit(launcher_.latest(), ExitStatus{true, SIGTERM});
  settle();
  EXPECT_EQ(state(), State::kStopped);
  EXPECT_EQ(launcher_.children.size(), 1u);
}

TEST_F(Lifecycle, StartOfAFailedAppStartsFresh) {
  MonitorOptions o;
  o.max_restarts = 0;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  crash();
  ASSERT_EQ(state(), State::kFailed);
  ASSERT_TRUE(monitor_->start().ok());
  EXPECT_EQ(state(), State::kStarting);
}

TEST_F(Lifecycle, StopOfAnExitedAppMarksItStopped) {
  MonitorOptions o;
  o.restart = RestartMode::kNever;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  crash();
  ASSERT_EQ(state(), State::kExited);
  monitor_->stop();
  EXPECT_EQ(state(), State::kStopped);
  EXPECT_FALSE(monitor_->status().wanted_up);
}

TEST_F(Lifecycle, HandlerRemovedDuringDispatchIsNotCalledAgain) {
  make();
  int second_calls = 0;
  Monitor::HandlerId second = 0;
  monitor_->on_event([&](const Event&) { monitor_->remove_handler(second); });
  second = monitor_->on_event([&](const Event&) { ++second_calls; });
  ASSERT_TRUE(monitor_->start().ok());
  crash(5s);
  EXPECT_EQ(second_calls, 0);
}

TEST_F(Lifecycle, HandlerAddedDuringDispatchSeesOnlyLaterEvents) {
  make();
  std::vector<EventType> seen;
  bool added = false;
  monitor_->on_event([&](const Event&) {
    if (added) return;
    added = true;
    monitor_->on_event([&](const Event& e) { seen.push_back(e.type); });
  });
  ASSERT_TRUE(monitor_->start().ok());
  EXPECT_TRUE(seen.empty());
  clock_.advance(1s);
  EXPECT_EQ(seen, std::vector<EventType>{EventType::kReady});
}

TEST_F(Lifecycle, StopFromInsideAnEventHandlerIsSafe) {
  make();
  monitor_->on_event([&](const Event& e) {
    if (e.type == EventType::kRestart) monitor_->stop();
  });
  ASSERT_TRUE(monitor_->start().ok());
  crash();
  settle();
  EXPECT_EQ(state(), State::kStopped);
  EXPECT_FALSE(clock_.next_timer().has_value());
}

// A command given from an event handler runs at once: start() there
// reports what it did, as it does anywhere else.
TEST_F(Lifecycle, StartFromInsideAnEventHandlerSpawnsAtOnce) {
  make();
  pid_t pid_in_handler = 0;
  monitor_->on_event([&](const Event& e) {
    if (e.type != EventType::kStop) return;
    EXPECT_TRUE(monitor_->start().ok());
    pid_in_handler = monitor_->status().pid;
  });
  ASSERT_TRUE(monitor_->start().ok());
  monitor_->stop();
  settle();
  EXPECT_NE(pid_in_handler, 0);
  EXPECT_EQ(pid_in_handler, launcher_.latest()->pid);
  EXPECT_EQ(state(), State::kStarting);
}

TEST_F(Lifecycle, StartFromInsideAnEventHandlerReportsTheSpawnFailure) {
  make();
  std::optional<Status> result;
  monitor_->on_event([&](const Event& e) {
    if (e.type != EventType::kStop || result) return;
    launcher_.fail_next_errno = ENOENT;
    result = monitor_->start();
  });
  ASSERT_TRUE(monitor_->start().ok());
  monitor_->stop();
  settle();
  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(result->ok());
  EXPECT_EQ(result->error().os_error, ENOENT);
  EXPECT_EQ(state(), State::kFailed);
}

// Events reach every handler in the order they happened, even when a
// handler's command raises new ones meanwhile.
TEST_F(Lifecycle, EventsOfACommandFromAHandlerFollowTheCurrentOne) {
  make();
  std::vector<EventType> second;
  monitor_->on_event([&](const Event& e) {
    if (e.type == EventType::kExit && monitor_->status().state == State::kStopped) {
      (void)monitor_->start();
    }
  });
  monitor_->on_event([&](const Event& e) { second.push_back(e.type); });
  ASSERT_TRUE(monitor_->start().ok());
  monitor_->stop();
  settle();
  EXPECT_EQ(second, (std::vector<EventType>{EventType::kStart, EventType::kExit, EventType::kStop,
                                            EventType::kStart}));
}

TEST_F(Lifecycle, StopDoneWaitsUntilTheGroupIsGone) {
  make();
  launcher_.exit_on_kill_signal = false;
  ASSERT_TRUE(monitor_->start().ok());
  int done = 0;
  monitor_->stop([&] { ++done; });
  monitor_->stop([&] { ++done; });  // a second stop while stopping
  settle();
  EXPECT_EQ(done, 0);
  launcher_.exit(launcher_.latest(), ExitStatus{true, SIGTERM});
  settle();
  EXPECT_EQ(done, 2);
  monitor_->stop([&] { ++done; });  // nothing runs: at once
  settle();
  EXPECT_EQ(done, 3);
}

TEST_F(Lifecycle, RestartDoneRunsOnceTheNewRunIsSpawned) {
  make();
  launcher_.exit_on_kill_signal = false;
  ASSERT_TRUE(monitor_->start().ok());
  bool done = false;
  monitor_->restart([&] { done = true; });
  settle();
  EXPECT_FALSE(done);
  launcher_.exit(launcher_.latest(), ExitStatus{true, SIGTERM});
  settle();
  EXPECT_TRUE(done);
  EXPECT_EQ(launcher_.children.size(), 2u);
  EXPECT_EQ(state(), State::kStarting);
}

}  // namespace
}  // namespace sempre
