#include "home.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>

#include "test_util.hpp"

namespace sempre {
namespace {

using test::TempDir;

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// A socket file at `path` that nobody listens on any more: what a daemon
// killed with SIGKILL leaves behind.
void make_stale_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  ::close(fd);
}

// Sets an environment variable for one test, and puts back the old value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(Home, ResolveHonoursSempreHome) {
  TempDir dir;
  ScopedEnv env("SEMPRE_HOME", dir.file("custom").c_str());
  EXPECT_EQ(resolve_home(), dir.file("custom"));
}

TEST(Home, ResolveMakesSempreHomeAbsolute) {
  ScopedEnv env("SEMPRE_HOME", "relative/home/");
  const std::string home = resolve_home();
  EXPECT_TRUE(home.starts_with("/")) << home;
  EXPECT_TRUE(home.ends_with("/relative/home")) << home;
}

TEST(Home, ResolveDefaultsToDotSempreInHome) {
  ScopedEnv no_sempre_home("SEMPRE_HOME", nullptr);
  ScopedEnv home("HOME", "/home/someone");
  EXPECT_EQ(resolve_home(), "/home/someone/.sempre");
}

TEST(Home, PathsAreInsideTheHome) {
  const HomePaths paths = home_paths("/srv/sempre");
  EXPECT_EQ(paths.socket, "/srv/sempre/sempre.sock");
  EXPECT_EQ(paths.lock, "/srv/sempre/sempred.lock");
  EXPECT_EQ(paths.log, "/srv/sempre/sempred.log");
  EXPECT_EQ(paths.state, "/srv/sempre/state.json");
  EXPECT_EQ(paths.logs_dir, "/srv/sempre/logs");
}

TEST(Home, PrepareCreatesAPrivateHomeAndItsParents) {
  TempDir dir;
  const HomePaths paths = home_paths(dir.file("a/b/home"));
  ASSERT_TRUE(prepare_home(paths).ok());
  EXPECT_EQ(mode_of(paths.home), 0700u);
  EXPECT_EQ(mode_of(paths.logs_dir), 0700u);
  // Preparing an existing home again is fine.
  EXPECT_TRUE(prepare_home(paths).ok());
}

TEST(Home, PrepareRefusesAWorldWritableHomeAndNamesIt) {
  TempDir dir;
  const HomePaths paths = home_paths(dir.file("home"));
  ASSERT_TRUE(prepare_home(paths).ok());
  ASSERT_EQ(::chmod(paths.home.c_str(), 0777), 0);
  const Status st = prepare_home(paths);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind, ErrorKind::kPermission);
  EXPECT_NE(st.error().message.find(paths.home), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("writable"), std::string::npos) << st.error().message;
}

TEST(Home, PrepareRefusesAGroupWritableHome) {
  TempDir dir;
  const HomePaths paths = home_paths(dir.file("home"));
  ASSERT_EQ(::mkdir(paths.home.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(paths.home.c_str(), 0770), 0);
  const Status st = prepare_home(paths);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind, ErrorKind::kPermission);
}

TEST(Home, PrepareRefusesAHomeOwnedByAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  TempDir dir;
  const HomePaths paths = home_paths(dir.file("home"));
  ASSERT_EQ(::mkdir(paths.home.c_str(), 0700), 0);
  ASSERT_EQ(::chown(paths.home.c_str(), 65534, 65534), 0);
  const Status st = prepare_home(paths);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind, ErrorKind::kPermission);
  EXPECT_NE(st.error().message.find(paths.home), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("65534"), std::string::npos) << st.error().message;
}

TEST(Home, SecondDaemonLockFailsNamingTheHolder) {
  TempDir dir;
  const HomePaths paths = home_paths(dir.path().string());
  auto first = take_daemon_lock(paths);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(test::read_file(paths.lock), std::to_string(::getpid()) + "\n");

  auto second = take_daemon_lock(paths);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().os_error, EEXIST);
  EXPECT_NE(second.error().message.find("already running for " + paths.home), std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find("(pid " + std::to_string(::getpid()) + ")"),
            std::string::npos)
      << second.error().message;

  ::close(*first);
  auto third = take_daemon_lock(paths);
  ASSERT_TRUE(third.ok()) << "a released lock can be taken again";
  ::close(*third);
}

TEST(Home, ControlSocketIsPrivate) {
  TempDir dir;
  const std::string path = dir.file("sempre.sock");
  auto fd = bind_control_socket(path);
  ASSERT_TRUE(fd.ok()) << fd.error().message;
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_NE(::fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);
  ::close(*fd);
}

TEST(Home, ControlSocketReplacesAStaleSocket) {
  TempDir dir;
  const std::string path = dir.file("sempre.sock");
  make_stale_socket(path);
  auto fd = bind_control_socket(path);
  ASSERT_TRUE(fd.ok()) << fd.error().message;
  EXPECT_EQ(mode_of(path), 0600u);
  ::close(*fd);
}

TEST(Home, ControlSocketRefusesALiveOne) {
  TempDir dir;
  const std::string path = dir.file("sempre.sock");
  auto live = bind_control_socket(path);
  ASSERT_TRUE(live.ok()) << live.error().message;
  auto second = bind_control_socket(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().os_error, EADDRINUSE);
  EXPECT_NE(second.error().message.find(path), std::string::npos) << second.error().message;
  ::close(*live);
}

TEST(Home, ControlSocketRefusesAFileThatIsNotASocket) {
  TempDir dir;
  const std::string path = dir.file("sempre.sock");
  test::write_file(path, "precious");
  auto fd = bind_control_socket(path);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(test::read_file(path), "precious");
}

TEST(Home, ControlSocketPathTooLongIsAClearError) {
  TempDir dir;
  const std::string path = dir.file(std::string(120, 'x') + "/sempre.sock");
  auto fd = bind_control_socket(path);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().kind, ErrorKind::kInvalidArgument);
  EXPECT_NE(fd.error().message.find("too long for a unix socket"), std::string::npos)
      << fd.error().message;
}

}  // namespace
}  // namespace sempre
