// sempre/reaper.hpp: a host reaping its orphans never takes a child of the
// library, whose exit status the library needs.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <optional>

#include "sempre/launcher.hpp"
#include "sempre/reaper.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

using test::run_until;

// Blocks until our child `pid` has exited, without reaping it.
void wait_exited_unreaped(pid_t pid) {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
}

bool contains(const std::vector<pid_t>& pids, pid_t pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

LaunchRequest child_request(std::vector<std::string> args) {
  LaunchRequest request;
  request.argv = {SEMPRE_TEST_CHILD};
  request.argv.insert(request.argv.end(), args.begin(), args.end());
  request.env = test::current_env();
  return request;
}

TEST(Reaper, ReapsAnOrphanButNeverAChildOfTheLibrary) {
  boost::asio::io_context io;
  auto launcher = make_posix_launcher(io.get_executor());
  auto launched = launcher->launch(child_request({"exit", "7"}));
  ASSERT_TRUE(launched.ok()) << launched.error().message;
  ChildProcess& child = **launched;
  EXPECT_TRUE(is_library_child(child.pid()));
  EXPECT_TRUE(contains(library_children(), child.pid()));

  const pid_t orphan = ::fork();
  if (orphan == 0) ::_exit(3);
  ASSERT_GT(orphan, 0);
  EXPECT_FALSE(is_library_child(orphan));
  wait_exited_unreaped(orphan);
  wait_exited_unreaped(child.pid());

  const std::vector<ReapedChild> reaped = reap_orphans();
  auto reaped_pid = [&](pid_t pid) {
    return std::find_if(reaped.begin(), reaped.end(),
                        [pid](const ReapedChild& r) { return r.pid == pid; });
  };
  ASSERT_NE(reaped_pid(orphan), reaped.end());
  EXPECT_EQ(reaped_pid(orphan)->status, (ExitStatus{false, 3}));
  EXPECT_EQ(reaped_pid(child.pid()), reaped.end());

  // The library still reaps its own child, and learns how it ended.
  std::optional<ExitStatus> status;
  child.async_wait([&](ExitStatus s) { status = s; });
  ASSERT_TRUE(run_until(io, [&] { return status.has_value(); }));
  EXPECT_EQ(*status, (ExitStatus{false, 7}));
  EXPECT_FALSE(is_library_child(child.pid()));
}

TEST(Reaper, AFailedSpawnLeavesNoChildRegistered) {
  boost::asio::io_context io;
  auto launcher = make_posix_launcher(io.get_executor());
  test::TempDir dir;
  const auto before = library_children();
  LaunchRequest request;
  request.argv = {dir.file("missing")};
  ASSERT_FALSE(launcher->launch(request).ok());
  EXPECT_EQ(library_children().size(), before.size());
}

TEST(Reaper, ADestroyedChildIsNoLongerTheLibrarys) {
  boost::asio::io_context io;
  auto launcher = make_posix_launcher(io.get_executor());
  auto launched = launcher->launch(child_request({"sleep", "forever"}));
  ASSERT_TRUE(launched.ok()) << launched.error().message;
  const pid_t pid = (*launched)->pid();
  launched->reset();  // killed and reaped
  EXPECT_FALSE(is_library_child(pid));
}

}  // namespace
}  // namespace sempre
