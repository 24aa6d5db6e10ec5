// Resolving what the user typed into what to exec, and who to run it as.
#include "sempre/program.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace sempre {
namespace {

using Argv = std::vector<std::string>;

// A private PATH with fake interpreters, and a working directory for
// scripts, so that results do not depend on what the host has installed.
class ResolveCommand : public ::testing::Test {
 protected:
  ResolveCommand() {
    std::filesystem::create_directories(bin());
    std::filesystem::create_directories(work());
    for (const char* name : {"sh", "python3", "tool"}) make_file(bin() + "/" + name, 0755);
    env_ = {"HOME=/root", "PATH=" + bin()};
  }

  std::string bin() const { return dir_.file("bin"); }
  std::string work() const { return dir_.file("work"); }

  static void make_file(const std::string& path, mode_t mode) {
    test::write_file(path, "#!/bin/sh\nexit 0\n");
    ::chmod(path.c_str(), mode);
  }

  test::TempDir dir_;
  std::vector<std::string> env_;
};

TEST_F(ResolveCommand, FindsBareNameInPath) {
  auto argv = resolve_command({"tool", "-v", "x y"}, "", env_, work());
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  EXPECT_EQ(*argv, (Argv{bin() + "/tool", "-v", "x y"}));
}

TEST_F(ResolveCommand, SearchesPathInOrderSkippingNonExecutables) {
  std::string first = dir_.file("first");
  std::filesystem::create_directories(first);
  make_file(first + "/tool", 0644);
  env_ = {"PATH=" + first + ":" + bin()};
  auto argv = resolve_command({"tool"}, "", env_, work());
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  EXPECT_EQ(*argv, (Argv{bin() + "/tool"}));
}

TEST_F(ResolveCommand, UsesDefaultPathWhenEnvironmentHasNone) {
  auto argv = resolve_command({"sh", "-c", "true"}, "", {}, "");
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  ASSERT_EQ(argv->size(), 3u);
  EXPECT_TRUE(std::filesystem::path((*argv)[0]).is_absolute());
  EXPECT_EQ(std::filesystem::path((*argv)[0]).filename(), "sh");
}

TEST_F(ResolveCommand, ResolvesRelativePathAgainstWorkingDirectory) {
  std::filesystem::create_directories(work() + "/sub");
  make_file(work() + "/app", 0755);
  make_file(work() + "/sub/app", 0755);

  auto local = resolve_command({"./app", "--port", "80"}, "", env_, work());
  ASSERT_TRUE(local.ok()) << local.error().message;
  EXPECT_EQ(*local, (Argv{work() + "/app", "--port", "80"}));

  auto nested = resolve_command({"sub/app"}, "", env_, work());
  ASSERT_TRUE(nested.ok()) << nested.error().message;
  EXPECT_EQ(*nested, (Argv{work() + "/sub/app"}));
}

TEST_F(ResolveCommand, RunsNonExecutableShellScriptWithSh) {
  make_file(work() + "/job.sh", 0644);
  auto argv = resolve_command({"./job.sh", "a"}, "", env_, work());
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  EXPECT_EQ(*argv, (Argv{bin() + "/sh", work() + "/job.sh", "a"}));
}

TEST_F(ResolveCommand, RunsNonExecutablePythonScriptWithPython3) {
  make_file(work() + "/server.py", 0644);
  auto argv = resolve_command({"server.py", "--debug"}, "", env_, work());
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  EXPECT_EQ(*argv, (Argv{bin() + "/python3", work() + "/server.py", "--debug"}));
}

TEST_F(ResolveCommand, ExecutableScriptRunsItself) {
  make_file(work() + "/run.sh", 0755);
  auto argv = resolve_command({"./run.sh"}, "", env_, work());
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  EXPECT_EQ(*argv, (Argv{work() + "/run.sh"}));
}

TEST_F(ResolveCommand, ExplicitInterpreterRunsTheProgram) {
  make_file(work() + "/app.js", 0644);
  auto argv = resolve_command({"app.js", "--port", "80"}, "python3 -u", env_, work());
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  EXPECT_EQ(*argv, (Argv{bin() + "/python3", "-u", work() + "/app.js", "--port", "80"}));
}

TEST_F(ResolveCommand, MissingProgramIsNotFound) {
  auto argv = resolve_command({"no-such-program"}, "", env_, work());
  ASSERT_FALSE(argv.ok());
  EXPECT_EQ(argv.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(argv.error().message, "no-such-program: No such file or directory");

  auto path = resolve_command({"./missing"}, "", env_, work());
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(path.error().message, "./missing: No such file or directory");
}

TEST_F(ResolveCommand, MissingInterpreterIsNotFound) {
  make_file(work() + "/app.rb", 0644);
  auto argv = resolve_command({"./app.rb"}, "", env_, work());
  ASSERT_FALSE(argv.ok());
  EXPECT_EQ(argv.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(argv.error().message, "./app.rb: interpreter ruby: No such file or directory");
}

TEST_F(ResolveCommand, NonExecutableFileIsPermissionDenied) {
  make_file(work() + "/data.txt", 0644);
  auto argv = resolve_command({"./data.txt"}, "", env_, work());
  ASSERT_FALSE(argv.ok());
  EXPECT_EQ(argv.error().kind, ErrorKind::kPermission);
  EXPECT_EQ(argv.error().message, "./data.txt: Permission denied");

  // As execvp: a PATH match that cannot be executed is EACCES, not ENOENT.
  make_file(bin() + "/locked", 0644);
  auto locked = resolve_command({"locked"}, "", env_, work());
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.error().kind, ErrorKind::kPermission);
  EXPECT_EQ(locked.error().message, "locked: Permission denied");
}

TEST_F(ResolveCommand, DirectoryIsPermissionDenied) {
  auto argv = resolve_command({"./"}, "", env_, work());
  ASSERT_FALSE(argv.ok());
  EXPECT_EQ(argv.error().kind, ErrorKind::kPermission);
}

TEST_F(ResolveCommand, EmptyCommandIsInvalid) {
  auto argv = resolve_command({}, "", env_, work());
  ASSERT_FALSE(argv.ok());
  EXPECT_EQ(argv.error().kind, ErrorKind::kInvalidArgument);
}

TEST(ResolveCredentials, NoUserNoGroupMeansNoChange) {
  auto creds = resolve_credentials("", "");
  ASSERT_TRUE(creds.ok());
  EXPECT_FALSE(creds->has_value());
}

TEST(ResolveCredentials, NamedUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto creds = resolve_credentials("nobody", "");
  ASSERT_TRUE(creds.ok()) << creds.error().message;
  ASSERT_TRUE(creds->has_value());
  const Credentials& c = **creds;
  EXPECT_EQ(c.uid, 65534u);
  EXPECT_EQ(c.gid, 65534u);
  EXPECT_NE(std::find(c.groups.begin(), c.groups.end(), c.gid), c.groups.end());
}

TEST(ResolveCredentials, NumericUserAndGroup) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto creds = resolve_credentials("65534", "0");
  ASSERT_TRUE(creds.ok()) << creds.error().message;
  ASSERT_TRUE(creds->has_value());
  EXPECT_EQ((*creds)->uid, 65534u);
  EXPECT_EQ((*creds)->gid, 0u);
}

TEST(ResolveCredentials, UnlistedNumericUserGetsSameNumberedGroup) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto creds = resolve_credentials("54321", "");
  ASSERT_TRUE(creds.ok()) << creds.error().message;
  ASSERT_TRUE(creds->has_value());
  EXPECT_EQ((*creds)->uid, 54321u);
  EXPECT_EQ((*creds)->gid, 54321u);
  EXPECT_TRUE((*creds)->groups.empty());
}

TEST(ResolveCredentials, NamedGroupOnly) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto creds = resolve_credentials("", "nogroup");
  ASSERT_TRUE(creds.ok()) << creds.error().message;
  ASSERT_TRUE(creds->has_value());
  EXPECT_EQ((*creds)->uid, 0u);
  EXPECT_EQ((*creds)->gid, 65534u);
}

TEST(ResolveCredentials, UnknownUserIsNotFound) {
  auto creds = resolve_credentials("sempre-no-such-user", "");
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(creds.error().message, "sempre-no-such-user: no such user");
}

TEST(ResolveCredentials, UnknownGroupIsNotFound) {
  auto creds = resolve_credentials("", "sempre-no-such-group");
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(creds.error().message, "sempre-no-such-group: no such group");
}

TEST(ResolveCredentials, OwnIdentityWithoutRootIsNoChange) {
  if (::geteuid() == 0) GTEST_SKIP() << "needs a user other than root";
  auto creds = resolve_credentials(std::to_string(::geteuid()), std::to_string(::getegid()));
  ASSERT_TRUE(creds.ok()) << creds.error().message;
  EXPECT_FALSE(creds->has_value());
}

TEST(ResolveCredentials, RefusesOtherIdentityWithoutRoot) {
  if (::geteuid() == 0) GTEST_SKIP() << "needs a user other than root";
  auto creds = resolve_credentials("0", "");
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.error().kind, ErrorKind::kPermission);
}

}  // namespace
}  // namespace sempre
