// The OS helpers of monitor/internal/os.hpp.
#include "os.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "test_util.hpp"

namespace sempre::os {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

TEST(UniqueFd, ClosesWhatItOwnsAndMovesOwnership) {
  auto pipe = make_pipe();
  ASSERT_TRUE(pipe.ok()) << pipe.error().message;
  const int read_fd = pipe->read.get();
  const int write_fd = pipe->write.get();
  EXPECT_TRUE(::fcntl(read_fd, F_GETFD) & FD_CLOEXEC);
  UniqueFd moved = std::move(pipe->read);
  EXPECT_FALSE(pipe->read);
  EXPECT_EQ(moved.get(), read_fd);
  moved.reset();
  EXPECT_FALSE(is_open(read_fd));
  const int released = pipe->write.release();
  EXPECT_EQ(released, write_fd);
  pipe->write.reset();
  EXPECT_TRUE(is_open(write_fd));
  ::close(write_fd);
}

TEST(WriteAll, WritesEverythingAndReportsWhatGotThroughOnFailure) {
  auto pipe = make_pipe();
  ASSERT_TRUE(pipe.ok());
  std::size_t written = 0;
  ASSERT_TRUE(write_all(pipe->write.get(), "hello\n", &written).ok());
  EXPECT_EQ(written, 6u);
  char buf[16];
  EXPECT_EQ(::read(pipe->read.get(), buf, sizeof buf), 6);
  pipe->read.reset();
  // No reader left: EPIPE, with the SIGPIPE it raises blocked and taken.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGPIPE);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  Status st = write_all(pipe->write.get(), "lost", &written);
  siginfo_t info;
  const timespec zero{0, 0};
  while (::sigtimedwait(&block, &info, &zero) > 0) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().os_error, EPIPE);
  EXPECT_EQ(written, 0u);
}

TEST(WriteFileAtomic, ReplacesTheFileAndLeavesNoTemporary) {
  test::TempDir dir;
  const std::string path = dir.file("state");
  test::write_file(path, "old");
  ASSERT_TRUE(write_file_atomic(path, "new content\n", 0600).ok());
  EXPECT_EQ(test::read_file(path), "new content\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  ASSERT_TRUE(write_file_atomic(dir.file("fresh"), "x", 0600).ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir.file("fresh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(WriteFileAtomic, FailureLeavesTheOldFile) {
  test::TempDir dir;
  const std::string path = dir.file("missing-dir/state");
  Status st = write_file_atomic(path, "x", 0600);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().os_error, ENOENT);
  EXPECT_EQ(st.error().message, "cannot write " + path + ".tmp: No such file or directory");
}

TEST(OpenPidfd, OpensALiveProcessAndFailsWithEsrchForAGoneOne) {
  auto own = open_pidfd(::getpid());
  ASSERT_TRUE(own.ok()) << own.error().message;
  EXPECT_TRUE(::fcntl(own->get(), F_GETFD) & FD_CLOEXEC);
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  auto gone = open_pidfd(child);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().os_error, ESRCH);
}

TEST(ProcStat, ParsesFieldsAfterAnOddCommandName) {
  ProcStat stat;
  ASSERT_TRUE(parse_proc_stat(
      "42 (a b) (c)) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 0 0 20 0 1 0 12345 1000 33 rest\n",
      stat));
  EXPECT_EQ(stat.state, 'S');
  EXPECT_EQ(stat.ppid, 7);
  EXPECT_EQ(stat.pgrp, 42);
  EXPECT_EQ(stat.utime, 11u);
  EXPECT_EQ(stat.stime, 22u);
  EXPECT_EQ(stat.starttime, 12345u);
  EXPECT_EQ(stat.rss_pages, 33u);
  EXPECT_FALSE(parse_proc_stat("no parenthesis", stat));
}

TEST(ProcStat, ReadsThisProcessAndReportsAGoneOneAsNotFound) {
  auto own = read_proc_stat(::getpid());
  ASSERT_TRUE(own.ok()) << own.error().message;
  EXPECT_EQ(own->ppid, ::getppid());
  EXPECT_EQ(own->pgrp, ::getpgrp());
  EXPECT_EQ(own->state, 'R');
  EXPECT_GT(own->starttime, 0u);
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  auto gone = read_proc_stat(child);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().kind, ErrorKind::kNotFound);
}

}  // namespace
}  // namespace sempre::os
