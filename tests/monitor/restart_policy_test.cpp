#include "restart_policy.hpp"

#include <gtest/gtest.h>

namespace sempre {
namespace {

using Kind = RestartDecision::Kind;
using namespace std::chrono_literals;

const ExitStatus kFailure{false, 1};
const ExitStatus kSuccess{false, 0};

MonitorOptions options_with(RestartMode mode) {
  MonitorOptions o;
  o.argv = {"x"};
  o.restart = mode;
  return o;
}

TEST(RestartPolicy, RunShorterThanMinUptimeIsACrashLoop) {
  RestartPolicy policy(options_with(RestartMode::kAlways));
  const auto d = policy.on_exit(kFailure, 999ms);
  EXPECT_EQ(d.kind, Kind::kRestart);
  EXPECT_EQ(d.attempt, 1);
  EXPECT_EQ(policy.consecutive_crashes(), 1);
}

TEST(RestartPolicy, DoublesDelayWhileCrashLooping) {
  RestartPolicy policy(options_with(RestartMode::kAlways));
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).delay, 100ms);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).delay, 200ms);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).delay, 400ms);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).delay, 800ms);
}

TEST(RestartPolicy, BackoffIsCappedAtBackoffMax) {
  auto o = options_with(RestartMode::kAlways);
  o.backoff_max = 1000ms;
  RestartPolicy policy(o);
  Millis last{0};
  for (int i = 0; i < 40; ++i) last = policy.on_exit(kFailure, 0ms).delay;
  EXPECT_EQ(last, 1000ms);
}

TEST(RestartPolicy, BackoffStartsAtRestartDelayWhenLarger) {
  auto o = options_with(RestartMode::kAlways);
  o.restart_delay = 300ms;
  RestartPolicy policy(o);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).delay, 300ms);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).delay, 600ms);
}

TEST(RestartPolicy, RunThatLastedRestartsAfterRestartDelay) {
  auto o = options_with(RestartMode::kAlways);
  o.restart_delay = 2s;
  RestartPolicy policy(o);
  const auto d = policy.on_exit(kFailure, 5s);
  EXPECT_EQ(d.kind, Kind::kRestart);
  EXPECT_EQ(d.delay, 2s);
  EXPECT_EQ(d.attempt, 0);
}

TEST(RestartPolicy, RunThatLastedResetsTheCrashTally) {
  RestartPolicy policy(options_with(RestartMode::kAlways));
  policy.on_exit(kFailure, 0ms);
  policy.on_exit(kFailure, 0ms);
  policy.on_exit(kFailure, 10s);
  EXPECT_EQ(policy.consecutive_crashes(), 0);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).delay, 100ms);
}

TEST(RestartPolicy, FailsAfterMaxRestartsConsecutiveCrashLoops) {
  auto o = options_with(RestartMode::kAlways);
  o.max_restarts = 3;
  RestartPolicy policy(o);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).kind, Kind::kRestart);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).kind, Kind::kRestart);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).kind, Kind::kRestart);
  const auto d = policy.on_exit(kFailure, 0ms);
  EXPECT_EQ(d.kind, Kind::kFail);
  EXPECT_NE(d.reason.find("3 restarts"), std::string::npos) << d.reason;
}

TEST(RestartPolicy, MaxRestartsZeroFailsOnFirstCrashLoop) {
  auto o = options_with(RestartMode::kAlways);
  o.max_restarts = 0;
  RestartPolicy policy(o);
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).kind, Kind::kFail);
}

TEST(RestartPolicy, MaxRestartsDoesNotCountRunsThatLasted) {
  auto o = options_with(RestartMode::kAlways);
  o.max_restarts = 1;
  RestartPolicy policy(o);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(policy.on_exit(kFailure, 2s).kind, Kind::kRestart);
}

TEST(RestartPolicy, ResetForgetsTheCrashTally) {
  auto o = options_with(RestartMode::kAlways);
  o.max_restarts = 1;
  RestartPolicy policy(o);
  policy.on_exit(kFailure, 0ms);
  policy.reset();
  EXPECT_EQ(policy.on_exit(kFailure, 0ms).kind, Kind::kRestart);
}

TEST(RestartPolicy, NeverDoesNotRestart) {
  RestartPolicy policy(options_with(RestartMode::kNever));
  EXPECT_EQ(policy.on_exit(kFailure, 10s).kind, Kind::kExit);
  EXPECT_EQ(policy.on_exit(kSuccess, 10s).kind, Kind::kExit);
}

TEST(RestartPolicy, OnFailureRestartsOnlyFailures) {
  RestartPolicy policy(options_with(RestartMode::kOnFailure));
  EXPECT_EQ(policy.on_exit(kSuccess, 10s).kind, Kind::kExit);
  EXPECT_EQ(policy.on_exit(kFailure, 10s).kind, Kind::kRestart);
  EXPECT_EQ(policy.on_exit(ExitStatus{true, 9}, 10s).kind, Kind::kRestart);
}

TEST(RestartPolicy, AlwaysRestartsSuccessfulExitsToo) {
  RestartPolicy policy(options_with(RestartMode::kAlways));
  EXPECT_EQ(policy.on_exit(kSuccess, 10s).kind, Kind::kRestart);
}

}  // namespace
}  // namespace sempre
