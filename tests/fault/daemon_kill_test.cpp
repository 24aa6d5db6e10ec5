// Fault scenarios: the daemon's worker is killed with SIGKILL at random
// moments, in each window that once lost or duplicated an app, and the
// apps must not notice. Each kill point is counted and checked exactly:
// apps alive, pids kept, copies per app, numbered lines lost.
//
// SEMPRE_FAULT_KILLS=N repeats N kill points (default 20); SEMPRE_FAULT_SEED
// fixes the random delays (the seed used is printed); SEMPRE_FAULT_WINDOW
// (mid-restart, mid-start, mid-stop, mid-reload or idle) kills in that
// window only.
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <random>

#include "fault/fault_fixture.hpp"

namespace sempre::fault {
namespace {

using test::alive;
using test::read_file;
using test::Subprocess;
using test::wait_for_exit;

using DaemonKill = FaultScenario;

TEST_F(DaemonKill, AppsSurviveWorkerKillsInEveryWindow) {
  const int kills = env_number("SEMPRE_FAULT_KILLS", 20);
  const unsigned seed = static_cast<unsigned>(env_number("SEMPRE_FAULT_SEED", 0)) != 0
                            ? static_cast<unsigned>(env_number("SEMPRE_FAULT_SEED", 0))
                            : std::random_device{}();
  std::cout << "kill points: " << kills << ", SEMPRE_FAULT_SEED=" << seed << "\n";
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> delay_ms(0, 20);

  // Apps that must never notice: a numbered ticker, an idle server, and a
  // flood of output through a rotating log.
  ASSERT_EQ(start("ticker", {kChild, "tick", "1"}), 0);
  ASSERT_EQ(start("idle", {kChild, "sleep", "forever"}), 0);
  ASSERT_EQ(start("flood", {kChild, "tick", "0"}, {"--log-max-size", "1M", "--log-keep", "2"}), 0);
  // The apps the windows work on: one of the command line, one of a file
  // that each reload changes.
  ASSERT_EQ(start("restarted", {kChild, "sleep", "forever"}), 0);
  const std::string file = dir_ + "/apps.toml";
  auto write_apps = [&](int version) {
    test::write_file(file, "[[app]]\nname = \"reloaded\"\ncmd = [\"" + kChild +
                               "\", \"sleep\", \"forever\"]\nenv = { FAULT_APP = \"reloaded\", "
                               "VERSION = \"" +
                               std::to_string(version) + "\" }\n");
  };
  write_apps(0);
  ASSERT_EQ(sempre({"start", file}), 0);
  std::map<std::string, pid_t> steady;
  {
    auto listed = apps();
    for (const char* name : {"ticker", "idle", "flood"}) {
      ASSERT_TRUE(listed.count(name)) << name;
      steady[name] = pid_of(listed[name]);
      ASSERT_GT(steady[name], 0) << name;
    }
  }

  std::vector<std::string> windows = {"mid-restart", "mid-start", "mid-stop", "mid-reload", "idle"};
  if (const char* only = std::getenv("SEMPRE_FAULT_WINDOW"); only != nullptr && *only != '\0') {
    windows = {only};
  }
  std::map<std::string, int> per_window;
  int started = 0;
  for (int k = 0; k < kills; ++k) {
    const std::string window = windows[static_cast<std::size_t>(k) % windows.size()];
    ++per_window[window];
    const std::vector<pid_t> before = workers();
    ASSERT_EQ(before.size(), 1u) << "kill " << k;

    // A command under way, and the SIGKILL while the worker serves it.
    std::unique_ptr<Subprocess> command;
    std::string fresh;
    if (window == "mid-restart") {
      command = std::make_unique<Subprocess>(
          std::vector<std::string>{kSempre, "restart", "restarted"}, env());
    } else if (window == "mid-start") {
      fresh = "fresh" + std::to_string(started++);
      command = std::make_unique<Subprocess>(
          std::vector<std::string>{kSempre, "start", "--name", fresh, "--env", "FAULT_APP=" + fresh,
                                   "--", kChild, "sleep", "forever"},
          env());
    } else if (window == "mid-stop") {
      command = std::make_unique<Subprocess>(std::vector<std::string>{kSempre, "stop", "restarted"},
                                             env());
    } else if (window == "mid-reload") {
      write_apps(k + 1);
      command =
          std::make_unique<Subprocess>(std::vector<std::string>{kSempre, "reload", file}, env());
    }
    ::usleep(static_cast<useconds_t>(delay_ms(random) * 1000));
    ASSERT_EQ(::kill(before.front(), SIGKILL), 0);
    ASSERT_TRUE(wait_for_exit(before.front())) << "kill " << k;
    if (command) command->wait(60s);  // answered, or cut off: either is allowed

    // The next worker serves, and every app is as it was.
    auto listed = apps();
    ASSERT_FALSE(listed.empty()) << "kill " << k << " (" << window << "): list failed";
    ASSERT_EQ(workers().size(), 1u) << "kill " << k;
    for (const auto& [name, pid] : steady) {
      ASSERT_TRUE(listed.count(name)) << name;
      EXPECT_EQ(pid_of(listed[name]), pid) << name << " after kill " << k << " (" << window << ")";
      EXPECT_EQ(copies(name), std::vector<pid_t>{pid}) << name << " after kill " << k;
    }
    // The app under the command runs at most once, and as listed.
    for (const std::string& name : {std::string("restarted"), std::string("reloaded"), fresh}) {
      if (name.empty()) continue;
      std::vector<pid_t> running = copies(name);
      const pid_t listed_pid = listed.count(name) ? pid_of(listed[name]) : 0;
      if (listed_pid == 0) {
        // Stopped, being restarted, or never recorded: no copy may be left
        // running once the worker has settled it.
        ASSERT_TRUE(test::eventually([&] {
          running = copies(name);
          auto again = apps();
          const pid_t now = again.count(name) ? pid_of(again[name]) : 0;
          return running.empty() || (now != 0 && running == std::vector<pid_t>{now});
        })) << name
            << " after kill " << k << " (" << window << "): " << running.size() << " copies";
      } else {
        EXPECT_EQ(running, std::vector<pid_t>{listed_pid})
            << name << " after kill " << k << " (" << window << ")";
      }
    }
    if (window == "mid-stop") {
      ASSERT_EQ(sempre({"start", "restarted"}), 0);
    }
  }

  // Not one of the ticker's lines was lost or written twice.
  ASSERT_EQ(sempre({"stop", "ticker"}), 0);
  const Ticks ticks = count_ticks(read_file(out_log("ticker")));
  std::cout << "kills: " << kills;
  for (const auto& [window, n] : per_window) std::cout << ", " << window << " " << n;
  std::cout << "; ticker lines checked: " << ticks.checked << ", lost: " << ticks.lost
            << ", written twice: " << ticks.doubled << "\n";
  EXPECT_GT(ticks.checked, 100);
  EXPECT_EQ(ticks.lost, 0);
  EXPECT_EQ(ticks.doubled, 0);
  EXPECT_TRUE(alive(steady["flood"])) << "the flood never blocked for good nor died of EPIPE";
}

}  // namespace
}  // namespace sempre::fault
