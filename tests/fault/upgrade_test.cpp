// Fault scenario for the daemon's replacement: `sempre daemon upgrade` and
// `daemon restart`, again and again, under apps that write all the while;
// each time the keeper replaces itself (same pid) and a new worker takes
// over. Counted exactly: keeper and workers, pids kept, restarts, copies per
// app, numbered lines lost or written twice; the time each replacement keeps
// `list` from answering is printed.
//
// SEMPRE_FAULT_UPGRADES=N replaces the worker N times (default 20).
#include <iostream>

#include "fault/fault_fixture.hpp"

namespace sempre::fault {
namespace {

using Upgrade = FaultScenario;

TEST_F(Upgrade, ReplacingTheWorkerKeepsEveryAppEveryCounterAndEveryLine) {
  const int rounds = env_number("SEMPRE_FAULT_UPGRADES", 20);
  ASSERT_EQ(start("ticker", {kChild, "tick", "1"}), 0);
  ASSERT_EQ(start("idle", {kChild, "sleep", "forever"}), 0);
  ASSERT_EQ(start("flood", {kChild, "tick", "0"}, {"--log-max-size", "1M", "--log-keep", "2"}), 0);
  // One restart before, so that a kept counter is not just 0 kept.
  ASSERT_EQ(sempre({"restart", "idle"}), 0);
  std::map<std::string, json::object> before = apps();
  ASSERT_EQ(before.size(), 3u);

  // The keeper: the daemon's pid, in the lock file.
  auto keeper = [this] {
    const std::string text = test::read_file(home_ + "/sempred.lock");
    return text.empty() ? 0 : static_cast<pid_t>(std::stol(text));
  };
  const pid_t keeper_pid = keeper();
  ASSERT_GT(keeper_pid, 0);

  std::vector<double> outages;
  for (int r = 0; r < rounds; ++r) {
    const char* how = r % 2 == 0 ? "upgrade" : "restart";
    const std::vector<pid_t> old = workers();
    ASSERT_EQ(old.size(), 1u) << "round " << r;
    const auto asked = std::chrono::steady_clock::now();
    std::string out;
    ASSERT_EQ(sempre({"daemon", how}, &out), 0) << how << ": " << out;
    ASSERT_TRUE(test::wait_for_exit(old.front())) << "round " << r;
    const std::map<std::string, json::object> now = apps();
    outages.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - asked)
            .count());
    ASSERT_EQ(now.size(), 3u) << "round " << r << " (" << how << ")";
    const std::vector<pid_t> next = workers();
    ASSERT_EQ(next.size(), 1u) << "round " << r;
    EXPECT_NE(next.front(), old.front());
    EXPECT_EQ(keeper(), keeper_pid) << "round " << r;
    EXPECT_NE(command_line(keeper_pid).find("--keeper-resume"), std::string::npos)
        << "round " << r << ": the keeper replaced itself: " << command_line(keeper_pid);
    for (const auto& [name, app] : before) {
      const json::object& after = now.at(name);
      const pid_t pid = pid_of(app);
      EXPECT_EQ(pid_of(after), pid) << name << " after " << how << " " << r;
      EXPECT_EQ(number(after, "restarts"), number(app, "restarts")) << name << " after " << r;
      EXPECT_GE(number(after, "uptime_ms"), number(app, "uptime_ms")) << name << " after " << r;
      EXPECT_EQ(copies(name), std::vector<pid_t>{pid}) << name << " after " << how << " " << r;
    }
    before = now;
  }

  ASSERT_EQ(sempre({"stop", "ticker"}), 0);
  const Ticks ticks = count_ticks(test::read_file(out_log("ticker")));
  std::sort(outages.begin(), outages.end());
  std::cout << "replacements: " << rounds << "; ticker lines checked: " << ticks.checked
            << ", lost: " << ticks.lost << ", written twice: " << ticks.doubled
            << "; command to next answer: median " << outages[outages.size() / 2] << " ms, max "
            << outages.back() << " ms\n";
  EXPECT_GT(ticks.checked, 100);
  EXPECT_EQ(ticks.lost, 0);
  EXPECT_EQ(ticks.doubled, 0);
  EXPECT_TRUE(test::alive(pid_of(before.at("flood"))));
}

}  // namespace
}  // namespace sempre::fault
