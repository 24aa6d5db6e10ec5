// `sempre run` as a user runs it: the real binary, real children.
#include <gtest/gtest.h>

#include <filesystem>

#include "e2e/subprocess.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

using namespace std::chrono_literals;
using test::Subprocess;

const std::string kSempre = SEMPRE_BIN;
const std::string kChild = SEMPRE_TEST_CHILD;

std::vector<std::string> run(std::vector<std::string> args) {
  std::vector<std::string> argv = {kSempre, "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

TEST(SempreRun, ExitsWithTheChildsStatus) {
  Subprocess p(run({"--restart", "never", "--", kChild, "exit", "7"}));
  EXPECT_EQ(p.wait(), 7);
  EXPECT_NE(p.err().find("exited with code 7"), std::string::npos) << p.err();
}

TEST(SempreRun, PrintsTheChildsOutputAndEvents) {
  Subprocess p(run({"--restart", "never", "--name", "greeter", kChild, "print", "hello", "world"}));
  EXPECT_EQ(p.wait(), 0);
  EXPECT_EQ(p.out(), "hello\nworld\n");
  EXPECT_NE(p.err().find("sempre: greeter started (pid "), std::string::npos) << p.err();
}

TEST(SempreRun, ForwardsHupUsr1AndUsr2ToTheChild) {
  Subprocess p(run({kChild, "signals"}));
  ASSERT_TRUE(p.wait_for_output("ready"));
  ::kill(p.pid(), SIGHUP);
  ASSERT_TRUE(p.wait_for_output("got HUP"));
  ::kill(p.pid(), SIGUSR1);
  ASSERT_TRUE(p.wait_for_output("got USR1"));
  ::kill(p.pid(), SIGUSR2);
  ASSERT_TRUE(p.wait_for_output("got USR2"));
  ::kill(p.pid(), SIGTERM);  // the child exits 0 on TERM
  EXPECT_EQ(p.wait(), 0);
  EXPECT_NE(p.err().find("stopped"), std::string::npos) << p.err();
}

TEST(SempreRun, SigintStopsTheChildAndEscalatesAfterKillTimeout) {
  Subprocess p(run({"--kill-timeout", "300ms", kChild, "ignore-term"}));
  ASSERT_TRUE(p.wait_for_output("ready"));
  ::kill(p.pid(), SIGINT);
  EXPECT_EQ(p.wait(), 128 + SIGKILL);
  EXPECT_NE(p.err().find("killed by signal KILL"), std::string::npos) << p.err();
}

TEST(SempreRun, SpawnFailureExitsWith127AndTheOsError) {
  Subprocess p(run({"/nonexistent/program"}));
  EXPECT_EQ(p.wait(), 127);
  EXPECT_NE(p.err().find("No such file or directory"), std::string::npos) << p.err();
}

TEST(SempreRun, UsageErrorExitsWith2) {
  Subprocess p(run({"--restart", "sometimes", kChild, "exit", "0"}));
  EXPECT_EQ(p.wait(), 2);
  EXPECT_EQ(p.err().rfind("sempre: ", 0), 0u) << p.err();
  EXPECT_NE(p.err().find("--restart"), std::string::npos) << p.err();

  Subprocess none({kSempre, "run"});
  EXPECT_EQ(none.wait(), 2);
  EXPECT_EQ(none.err().rfind("sempre: ", 0), 0u) << none.err();
}

TEST(SempreRun, CrashLoopEndsFailedWithTheLastStatus) {
  Subprocess p(run({"--max-restarts", "2", kChild, "exit", "4"}));
  EXPECT_EQ(p.wait(), 4);
  EXPECT_NE(p.err().find("failed: gave up after 2 restarts"), std::string::npos) << p.err();
}

TEST(SempreRun, AdoptsAndReapsOrphansAsASubreaper) {
  // A process the app daemonized (its parent gone, its own session) must be
  // re-parented to sempre run, not to init.
  test::TempDir dir;
  const std::string pidfile = dir.file("orphan.pid");
  Subprocess p(run({"--", "/bin/sh", "-c",
                    "(setsid \"$0\" sleep forever >/dev/null 2>&1 & echo $! > \"$1\"); "
                    "echo started; exec \"$0\" sleep forever",
                    kChild, pidfile}));
  ASSERT_TRUE(p.wait_for_output("started"));
  const pid_t orphan = std::stoi(test::read_file(pidfile));
  const std::string stat = test::read_file("/proc/" + std::to_string(orphan) + "/stat");
  long ppid = 0;
  char state = 0;
  ASSERT_EQ(std::sscanf(stat.c_str() + stat.rfind(')') + 1, " %c %ld", &state, &ppid), 2);
  EXPECT_EQ(ppid, p.pid());

  // Once it dies, sempre run reaps it: its /proc entry goes away.
  ::kill(orphan, SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  const std::string proc = "/proc/" + std::to_string(orphan);
  while (std::filesystem::exists(proc) && std::chrono::steady_clock::now() < deadline) {
    ::poll(nullptr, 0, 5);  // wait for the reap, bounded by the deadline
  }
  EXPECT_FALSE(std::filesystem::exists(proc)) << "orphan " << orphan << " was not reaped";
  ::kill(p.pid(), SIGTERM);
  EXPECT_EQ(p.wait(), 128 + SIGTERM);
}

TEST(SempreCli, UnknownCommandAndBadOptionPointAtTheRightHelp) {
  Subprocess unknown({kSempre, "frobnicate"});
  EXPECT_EQ(unknown.wait(), 2);
  EXPECT_EQ(unknown.err().rfind("sempre: unknown command \"frobnicate\"", 0), 0u) << unknown.err();

  Subprocess bad({kSempre, "run", "--no-such-option", kChild, "exit", "0"});
  EXPECT_EQ(bad.wait(), 2);
  EXPECT_NE(bad.err().find("Run 'sempre run --help'"), std::string::npos) << bad.err();
}

TEST(SempreRun, VersionAndHelp) {
  Subprocess v({kSempre, "--version"});
  EXPECT_EQ(v.wait(), 0);
  EXPECT_EQ(v.out().rfind("sempre ", 0), 0u) << v.out();
  Subprocess h({kSempre, "run", "--help"});
  EXPECT_EQ(h.wait(), 0);
  EXPECT_NE(h.out().find("--kill-timeout"), std::string::npos);
}

}  // namespace
}  // namespace sempre
