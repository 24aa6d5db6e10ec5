#include "log_writer.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ctime>
#include <regex>

#include "test_util.hpp"

namespace sempre {
namespace {

using test::read_file;
using test::TempDir;
using test::write_file;

// A clock whose wall time the test sets; the writer reads nothing else.
class FixedWallClock final : public Clock {
 public:
  explicit FixedWallClock(std::chrono::system_clock::time_point wall = {}) : wall_(wall) {}
  TimePoint now() const override { return TimePoint{}; }
  std::chrono::system_clock::time_point wall_now() const override { return wall_; }
  std::unique_ptr<Timer> start_timer(Duration, std::function<void()>) override { return nullptr; }

 private:
  std::chrono::system_clock::time_point wall_;
};

std::unique_ptr<LogWriter> open_writer(const LogWriter::Options& options, const Clock& clock) {
  auto writer = LogWriter::open(options, clock);
  EXPECT_TRUE(writer.ok()) << (writer.ok() ? "" : writer.error().message);
  return writer.ok() ? std::move(writer.value()) : nullptr;
}

// PATH.N ... PATH.1 then PATH: the whole log, oldest first.
std::vector<std::string> files_oldest_first(const std::string& path, int keep) {
  std::vector<std::string> files;
  for (int i = keep; i >= 1; --i) {
    const std::string name = path + "." + std::to_string(i);
    if (std::filesystem::exists(name)) files.push_back(name);
  }
  files.push_back(path);
  return files;
}

std::size_t count_files(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(LogWriter, CreatesParentDirectoriesAndFileWithMode0640) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("a/b/app.out.log");
  auto writer = open_writer({.path = path}, clock);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write_lines("hello\n").ok());

  EXPECT_EQ(read_file(path), "hello\n");
  const mode_t mask = ::umask(0);
  ::umask(mask);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u & ~mask);
  EXPECT_EQ(writer->path(), path);
  EXPECT_EQ(writer->size(), 6u);
}

TEST(LogWriter, TruncatesExistingFileByDefault) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  write_file(path, "old line\n");
  auto writer = open_writer({.path = path}, clock);
  ASSERT_TRUE(writer);
  EXPECT_EQ(writer->size(), 0u);
  ASSERT_TRUE(writer->write_lines("new line\n").ok());
  EXPECT_EQ(read_file(path), "new line\n");
}

TEST(LogWriter, AppendsToExistingFileWhenAsked) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  write_file(path, "old line\n");
  auto writer = open_writer({.path = path, .append = true}, clock);
  ASSERT_TRUE(writer);
  EXPECT_EQ(writer->size(), 9u);
  ASSERT_TRUE(writer->write_lines("new line\n").ok());
  EXPECT_EQ(read_file(path), "old line\nnew line\n");
  EXPECT_EQ(writer->size(), 18u);
}

TEST(LogWriter, PrefixesEveryLineWithLocalTimeAndNumericOffset) {
  TempDir dir;
  const std::time_t when = 1795000000;  // in 2026
  FixedWallClock clock(std::chrono::system_clock::from_time_t(when) +
                       std::chrono::milliseconds(123));
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path, .timestamps = true}, clock);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write_lines("one\n\nthree\n").ok());

  const auto lines = test::split_lines(read_file(path));
  ASSERT_EQ(lines.size(), 3u);
  const std::string stamp = lines[0].substr(0, 29);
  EXPECT_EQ(lines[0], stamp + "one");
  EXPECT_EQ(lines[1], stamp);
  EXPECT_EQ(lines[2], stamp + "three");

  // The stamp must name the same instant: its fields, less its offset, are
  // the UTC time the clock gave.
  const std::regex format(
      R"((\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})([+-])(\d\d)(\d\d) )");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(stamp, m, format)) << stamp;
  std::tm fields{};
  fields.tm_year = std::stoi(m[1]) - 1900;
  fields.tm_mon = std::stoi(m[2]) - 1;
  fields.tm_mday = std::stoi(m[3]);
  fields.tm_hour = std::stoi(m[4]);
  fields.tm_min = std::stoi(m[5]);
  fields.tm_sec = std::stoi(m[6]);
  const long offset = (m[8] == "-" ? -1 : 1) * (std::stol(m[9]) * 3600 + std::stol(m[10]) * 60);
  EXPECT_EQ(::timegm(&fields) - offset, when);
  EXPECT_EQ(m[7], "123");
}

TEST(LogWriter, PadsMillisecondsToThreeDigits) {
  TempDir dir;
  FixedWallClock clock(std::chrono::system_clock::from_time_t(1795000000) +
                       std::chrono::milliseconds(7));
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path, .timestamps = true}, clock);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write_lines("x\n").ok());
  EXPECT_EQ(read_file(path).substr(19, 4), ".007");
}

TEST(LogWriter, RotatesByRenamingSoThatDotOneIsNewest) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path, .max_size = 20, .keep = 3}, clock);
  ASSERT_TRUE(writer);
  std::vector<std::string> rotated;
  writer->set_on_rotate([&](const std::string& p) { rotated.push_back(p); });

  ASSERT_TRUE(writer->write_lines("first line 1\n").ok());
  EXPECT_TRUE(rotated.empty());
  ASSERT_TRUE(writer->write_lines("second line\n").ok());
  ASSERT_TRUE(writer->write_lines("third line!\n").ok());

  EXPECT_EQ(read_file(path + ".2"), "first line 1\n");
  EXPECT_EQ(read_file(path + ".1"), "second line\n");
  EXPECT_EQ(read_file(path), "third line!\n");
  EXPECT_EQ(rotated, (std::vector<std::string>{path, path}));
  EXPECT_EQ(writer->size(), 12u);
}

TEST(LogWriter, KeepsExactlyKeepRotatedFiles) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path, .max_size = 10, .keep = 3}, clock);
  ASSERT_TRUE(writer);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(writer->write_lines("line " + std::to_string(i) + "\n").ok());
  }
  EXPECT_EQ(read_file(path), "line 9\n");
  EXPECT_EQ(read_file(path + ".1"), "line 8\n");
  EXPECT_EQ(read_file(path + ".2"), "line 7\n");
  EXPECT_EQ(read_file(path + ".3"), "line 6\n");
  EXPECT_EQ(count_files(dir.path()), 4u);
}

TEST(LogWriter, SplitsOneCallOnlyBetweenLinesAndFillsEachFile) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  const std::uint64_t max_size = 64;
  auto writer = open_writer({.path = path, .max_size = max_size, .keep = 100}, clock);
  ASSERT_TRUE(writer);
  std::string input;
  for (int i = 0; i < 50; ++i) input += std::to_string(i) + std::string(i % 40, '-') + "\n";
  ASSERT_TRUE(writer->write_lines(input).ok());

  std::string joined;
  std::vector<std::string> contents;
  for (const auto& file : files_oldest_first(path, 100)) contents.push_back(read_file(file));
  ASSERT_GT(contents.size(), 10u);
  for (std::size_t i = 0; i < contents.size(); ++i) {
    const std::string& content = contents[i];
    EXPECT_LE(content.size(), max_size) << i;
    ASSERT_FALSE(content.empty()) << i;
    EXPECT_EQ(content.back(), '\n') << i;
    if (i + 1 < contents.size()) {
      // Rotated only because the next line would not have fitted.
      const std::size_t next_line = contents[i + 1].find('\n') + 1;
      EXPECT_GT(content.size() + next_line, max_size) << i;
    }
    joined += content;
  }
  EXPECT_EQ(joined, input);
}

TEST(LogWriter, KeepsLineLongerThanMaxSizeWholeInAFileOfItsOwn) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path, .max_size = 16, .keep = 5}, clock);
  ASSERT_TRUE(writer);
  const std::string long_line = std::string(40, 'L') + "\n";
  ASSERT_TRUE(writer->write_lines("short\n").ok());
  ASSERT_TRUE(writer->write_lines(long_line + "after\n").ok());

  EXPECT_EQ(read_file(path + ".2"), "short\n");
  EXPECT_EQ(read_file(path + ".1"), long_line);
  EXPECT_EQ(read_file(path), "after\n");
}

TEST(LogWriter, StampedLinesCountTowardsMaxSize) {
  TempDir dir;
  FixedWallClock clock(std::chrono::system_clock::from_time_t(1795000000));
  const std::string path = dir.file("app.log");
  // 29 bytes of stamp + "abc\n": three lines fill 99 of 100 bytes.
  auto writer = open_writer({.path = path, .max_size = 100, .keep = 5, .timestamps = true}, clock);
  ASSERT_TRUE(writer);
  std::string input;
  for (int i = 0; i < 8; ++i) input += "abc\n";
  ASSERT_TRUE(writer->write_lines(input).ok());

  EXPECT_EQ(read_file(path + ".2").size(), 99u);
  EXPECT_EQ(read_file(path + ".1").size(), 99u);
  EXPECT_EQ(read_file(path).size(), 66u);
}

TEST(LogWriter, RotatesAnAppendedFileAlreadyPastMaxSizeBeforeWriting) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  const std::string old = std::string(99, 'o') + "\n";
  write_file(path, old);
  auto writer = open_writer({.path = path, .append = true, .max_size = 50, .keep = 2}, clock);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write_lines("x\n").ok());
  EXPECT_EQ(read_file(path + ".1"), old);
  EXPECT_EQ(read_file(path), "x\n");
}

TEST(LogWriter, RotationDeletesCopiesBeyondKeep) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  write_file(path + ".1", "one\n");
  write_file(path + ".2", "two\n");
  write_file(path + ".5", "five\n");
  auto writer = open_writer({.path = path, .max_size = 1000, .keep = 2}, clock);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write_lines("current\n").ok());
  ASSERT_TRUE(writer->rotate().ok());

  EXPECT_EQ(read_file(path + ".1"), "current\n");
  EXPECT_EQ(read_file(path + ".2"), "one\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".3"));
  EXPECT_FALSE(std::filesystem::exists(path + ".5"));
}

TEST(LogWriter, ForcedRotationReopensEmptyAndReportsThePath) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path}, clock);
  ASSERT_TRUE(writer);
  std::string rotated;
  writer->set_on_rotate([&](const std::string& p) { rotated = p; });
  ASSERT_TRUE(writer->write_lines("before\n").ok());
  ASSERT_TRUE(writer->rotate().ok());
  EXPECT_EQ(rotated, path);
  EXPECT_EQ(writer->size(), 0u);
  ASSERT_TRUE(writer->write_lines("after\n").ok());
  EXPECT_EQ(read_file(path + ".1"), "before\n");
  EXPECT_EQ(read_file(path), "after\n");
}

TEST(LogWriter, KeepZeroRotatesWithoutCopies) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path, .max_size = 10, .keep = 0}, clock);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write_lines("line 1\n").ok());
  ASSERT_TRUE(writer->write_lines("line 2\n").ok());
  EXPECT_EQ(read_file(path), "line 2\n");
  EXPECT_EQ(count_files(dir.path()), 1u);
}

TEST(LogWriter, RemoveRotatedLogsDeletesOnlyNumberedCopies) {
  TempDir dir;
  const std::string path = dir.file("app.log");
  for (const char* suffix : {"", ".1", ".2", ".10", ".x", ".1.gz", ".01"}) {
    write_file(path + suffix, "x\n");
  }
  write_file(dir.file("other.log.1"), "x\n");

  EXPECT_EQ(remove_rotated_logs(path), 3);
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".1"));
  EXPECT_FALSE(std::filesystem::exists(path + ".2"));
  EXPECT_FALSE(std::filesystem::exists(path + ".10"));
  EXPECT_TRUE(std::filesystem::exists(path + ".x"));
  EXPECT_TRUE(std::filesystem::exists(path + ".1.gz"));
  EXPECT_TRUE(std::filesystem::exists(path + ".01"));
  EXPECT_TRUE(std::filesystem::exists(dir.file("other.log.1")));
  EXPECT_EQ(remove_rotated_logs(dir.file("missing/app.log")), 0);
}

TEST(LogWriter, ReportsDiskFullAndKeepsAccepting) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full";
  FixedWallClock clock;
  auto writer = open_writer({.path = "/dev/full", .append = true}, clock);
  ASSERT_TRUE(writer);
  for (int i = 0; i < 2; ++i) {
    Status status = writer->write_lines("lost\n");
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().os_error, ENOSPC);
    EXPECT_EQ(status.error().kind, ErrorKind::kTransient);
  }
}

TEST(LogWriter, NeverRotatesAPathThatIsNotARegularFile) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("collector.fifo");
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  // A reader first, so that opening the writing end does not block.
  const int reader = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  auto writer = open_writer({.path = path, .max_size = 10, .keep = 2}, clock);
  ASSERT_TRUE(writer);
  int rotations = 0;
  writer->set_on_rotate([&](const std::string&) { ++rotations; });
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(writer->write_lines("line " + std::to_string(i) + "\n").ok());
  ASSERT_TRUE(writer->rotate().ok());

  EXPECT_EQ(rotations, 0);
  EXPECT_FALSE(std::filesystem::exists(path + ".1"));
  char buf[64];
  const ssize_t n = ::read(reader, buf, sizeof buf);
  ::close(reader);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0), "line 0\nline 1\nline 2\n");
}

// Lowers the file size limit so that a write is cut short, as on a disk
// that fills up mid-write, and restores it afterwards.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    ok_ = ::setrlimit(RLIMIT_FSIZE, &lowered) == 0;
  }
  ~FileSizeLimit() { lift(); }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  bool ok() const { return ok_; }
  void lift() {
    if (lifted_) return;
    lifted_ = true;
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
  bool ok_ = false;
  bool lifted_ = false;
};

TEST(LogWriter, WriteCutShortLeavesNoPartialLine) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path}, clock);
  ASSERT_TRUE(writer);
  const std::string first = std::string(59, 'a') + "\n";
  const std::string second = std::string(59, 'b') + "\n" + std::string(59, 'c') + "\n";
  {
    FileSizeLimit limit(100);
    ASSERT_TRUE(limit.ok());
    ASSERT_TRUE(writer->write_lines(first).ok());
    Status status = writer->write_lines(second);
    limit.lift();
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().os_error, EFBIG);
  }
  EXPECT_EQ(read_file(path), first);
  EXPECT_EQ(writer->size(), first.size());
  ASSERT_TRUE(writer->write_lines("next\n").ok());
  EXPECT_EQ(read_file(path), first + "next\n");
}

TEST(LogWriter, CountsWhatItDropsUntilAWriteWorksAgain) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path}, clock);
  ASSERT_TRUE(writer);
  const std::string first = std::string(59, 'a') + "\n";
  const std::string lost = std::string(59, 'b') + "\n" + std::string(59, 'c') + "\n";
  std::uint64_t dropped = 99;
  {
    FileSizeLimit limit(100);
    ASSERT_TRUE(limit.ok());
    ASSERT_TRUE(writer->write_lines(first, &dropped).ok());
    EXPECT_EQ(dropped, 0u);
    EXPECT_FALSE(writer->failing());
    EXPECT_FALSE(writer->write_lines(lost, &dropped).ok());
    EXPECT_EQ(dropped, lost.size());
    EXPECT_TRUE(writer->failing());
    EXPECT_FALSE(writer->write_lines(lost, &dropped).ok());
  }
  EXPECT_EQ(writer->dropped(), 2 * lost.size());
  EXPECT_EQ(writer->dropped_while_failing(), 2 * lost.size());
  ASSERT_TRUE(writer->write_lines("e\n", &dropped).ok());
  EXPECT_EQ(dropped, 0u);
  EXPECT_FALSE(writer->failing());
  EXPECT_EQ(writer->dropped(), 2 * lost.size());
  EXPECT_EQ(read_file(path), first + "e\n");
}

TEST(LogWriter, DroppedBytesAreTheAppsWithoutTimestamps) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path, .timestamps = true}, clock);
  ASSERT_TRUE(writer);
  std::uint64_t dropped = 0;
  {
    FileSizeLimit limit(10);
    ASSERT_TRUE(limit.ok());
    EXPECT_FALSE(writer->write_lines("one\ntwo\n", &dropped).ok());
  }
  EXPECT_EQ(dropped, 8u);
  EXPECT_EQ(read_file(path), "");
}

TEST(LogWriter, ALogWhoseDirectoryWasRemovedIsMadeAgain) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("logs/app.log");
  auto writer = open_writer({.path = path}, clock);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write_lines("before\n").ok());
  std::filesystem::remove_all(dir.file("logs"));
  std::uint64_t dropped = 1;
  ASSERT_TRUE(writer->write_lines("after\n", &dropped).ok());
  EXPECT_EQ(dropped, 0u);
  EXPECT_EQ(read_file(path), "after\n");
  EXPECT_EQ(writer->size(), 6u);
}

TEST(LogWriter, ALogThatCannotBeMadeAgainDropsAndSaysWhy) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("logs/app.log");
  auto writer = open_writer({.path = path}, clock);
  ASSERT_TRUE(writer);
  std::filesystem::remove_all(dir.file("logs"));
  // A file where the directory was: it cannot be made again.
  test::write_file(dir.file("logs"), "x");
  std::uint64_t dropped = 0;
  Status st = writer->write_lines("lost\n", &dropped);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find(dir.file("logs")), std::string::npos) << st.error().message;
  EXPECT_EQ(dropped, 5u);
  EXPECT_TRUE(writer->failing());
  std::filesystem::remove(dir.file("logs"));
  ASSERT_TRUE(writer->write_lines("back\n").ok());
  EXPECT_FALSE(writer->failing());
  EXPECT_EQ(read_file(path), "back\n");
}

// Out of descriptors (or inodes), a rotation cannot make its next file: it
// then moves nothing, and the lines go on into the current file, which
// stays where it is with its history beside it.
TEST(LogWriter, ARotationThatCannotMakeItsNextFileMovesNothing) {
  TempDir dir;
  FixedWallClock clock;
  const std::string path = dir.file("app.log");
  auto writer = open_writer({.path = path, .max_size = 100, .keep = 2}, clock);
  ASSERT_TRUE(writer);
  const std::string line = std::string(59, 'a') + "\n";
  ASSERT_TRUE(writer->write_lines(line).ok());
  ASSERT_TRUE(writer->write_lines(line).ok());  // rotated: PATH.1 holds the first
  ASSERT_TRUE(std::filesystem::exists(path + ".1"));

  // Every descriptor below the limit in use: open() fails with EMFILE.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int lowest_free = ::dup(0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit lowered = saved;
  lowered.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  Status st = writer->write_lines(line);
  ::setrlimit(RLIMIT_NOFILE, &saved);

  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().os_error, EMFILE) << st.error().message;
  EXPECT_EQ(read_file(path), line + line) << "the lines went on into the current file";
  EXPECT_EQ(read_file(path + ".1"), line);
  EXPECT_FALSE(std::filesystem::exists(path + ".2"));
  EXPECT_FALSE(std::filesystem::exists(path + ".rotating"));
  ASSERT_TRUE(writer->write_lines(line).ok());
  EXPECT_EQ(read_file(path), line);
  EXPECT_EQ(read_file(path + ".1"), line + line);
  EXPECT_EQ(read_file(path + ".2"), line);
}

}  // namespace
}  // namespace sempre
