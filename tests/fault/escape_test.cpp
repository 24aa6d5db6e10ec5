// Fault scenario for containment: apps whose processes fork twice and call
// setsid, restarted, left to crash-loop, taken over by a new worker, then
// stopped and deleted, with cgroups and without. Counted exactly: the live
// processes of each app after every step.
//
// SEMPRE_FAULT_RESTARTS=N restarts the escaping app N times (default 5).
#include <sys/wait.h>

#include <iostream>

#include "fault/fault_fixture.hpp"

namespace sempre::fault {
namespace {

class Escapes : public FaultScenario, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    FaultScenario::SetUp();
    fs::create_directories(home_);
    fs::permissions(home_, fs::perms::owner_all, fs::perm_options::replace);
    if (!GetParam()) test::write_file(home_ + "/config.toml", "[daemon]\ncgroups = false\n");
  }

  // The pid the escapee of the run under way wrote to `pidfile`, once there.
  pid_t escapee(const std::string& pidfile) {
    pid_t pid = 0;
    EXPECT_TRUE(test::eventually([&] {
      const std::string text = test::read_file(pidfile);
      if (text.empty() || text.back() != '\n') return false;
      pid = static_cast<pid_t>(std::stol(text));
      return true;
    }));
    return pid;
  }
};

TEST_P(Escapes, NothingAnAppForksOutlivesItsRunsItsWorkerOrItsStop) {
  const int restarts = env_number("SEMPRE_FAULT_RESTARTS", 5);
  const std::string pidfile = dir_ + "/escapee.pid";
  ASSERT_EQ(start("esc", {kChild, "escape", pidfile, "stay"}, {"--kill-timeout", "500ms"}), 0);
  std::vector<pid_t> gone;
  int left_behind = 0;
  for (int r = 0; r <= restarts; ++r) {
    const pid_t current = escapee(pidfile);
    ASSERT_GT(current, 0) << "run " << r;
    const std::vector<pid_t> live = copies("esc");
    EXPECT_EQ(live.size(), 2u) << "run " << r << ": the main process and its one escapee";
    for (pid_t old : gone) left_behind += test::alive(old) ? 1 : 0;
    gone.push_back(current);
    if (r == restarts) break;
    ::unlink(pidfile.c_str());
    ASSERT_EQ(sempre({"restart", "esc"}), 0) << "restart " << r;
  }
  EXPECT_EQ(left_behind, 0) << "escapees of earlier runs still alive";

  // A new worker takes the run over, escapee included.
  const std::vector<pid_t> worker = workers();
  ASSERT_EQ(worker.size(), 1u);
  ASSERT_EQ(::kill(worker.front(), SIGKILL), 0);
  ASSERT_TRUE(test::wait_for_exit(worker.front()));
  ASSERT_EQ(apps().size(), 1u);
  ASSERT_EQ(sempre({"stop", "esc"}), 0);
  const std::size_t after_stop = copies("esc").size();
  EXPECT_EQ(after_stop, 0u) << "alive after stop: " << copies("esc").size();

  // A server that daemonizes: its first process exits each run, and the
  // policy restarts it; each run's escapee goes before the next run.
  const std::string forked = dir_ + "/forked.pid";
  ASSERT_EQ(start("forking", {kChild, "escape", forked, "exit"},
                  {"--restart-delay", "10ms", "--kill-timeout", "500ms"}),
            0);
  std::size_t most = 0;
  ASSERT_TRUE(test::eventually([&] {
    most = std::max(most, copies("forking").size());
    const auto listed = apps();
    return listed.count("forking") && number(listed.at("forking"), "restarts") >= restarts;
  })) << "forking never restarted "
      << restarts << " times";
  EXPECT_LE(most, 2u) << "copies of a daemonizing app at once";
  ASSERT_EQ(sempre({"delete", "forking"}), 0);
  const std::size_t after_delete = copies("forking").size();
  EXPECT_EQ(after_delete, 0u);
  std::cout << (GetParam() ? "cgroups" : "process tree") << ": " << restarts
            << " restarts, escapees left behind " << left_behind << ", after worker kill and stop "
            << after_stop << "; daemonizing app: at most " << most << " processes at once, "
            << after_delete << " after delete\n";
}

INSTANTIATE_TEST_SUITE_P(Containment, Escapes, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Cgroups" : "ProcessTree";
                         });

}  // namespace
}  // namespace sempre::fault
