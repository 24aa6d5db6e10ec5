#include "sempre/file_watcher.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "monitor/fake_clock.hpp"
#include "sempre/clock.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

namespace fs = std::filesystem;
using test::FakeClock;
using test::run_until;
using test::TempDir;
using test::write_file;
using namespace std::chrono_literals;

// A watcher on the real clock with a short debounce, recording what it reports.
class FileWatcherTest : public ::testing::Test {
 protected:
  FileWatcherTest() : clock_(make_asio_clock(io_.get_executor())) {
    options_.paths = {dir_.path().string()};
    options_.debounce = 50ms;
  }

  void start() { start_with(*clock_); }
  void start_with(Clock& clock) {
    auto created =
        FileWatcher::create(io_.get_executor(), clock, options_,
                            [this](const std::string& path) { reported_.push_back(path); });
    ASSERT_TRUE(created.ok()) << created.error().message;
    watcher_ = std::move(*created);
  }

  // Waits for the next report and returns its path ("" on timeout).
  std::string next_report() {
    const std::size_t seen = reported_.size();
    const auto arrived = [&] { return reported_.size() > seen; };
    if (!run_until(io_, arrived, 10s)) return "";
    return reported_[seen];
  }

  std::string path(const std::string& rel) const { return (dir_.path() / rel).string(); }

  TempDir dir_;
  boost::asio::io_context io_;
  std::unique_ptr<Clock> clock_;
  FileWatcher::Options options_;
  std::unique_ptr<FileWatcher> watcher_;
  std::vector<std::string> reported_;
};

TEST_F(FileWatcherTest, ReportsAChangedFile) {
  write_file(path("app.js"), "v1");
  start();
  write_file(path("app.js"), "v2");
  EXPECT_EQ(next_report(), path("app.js"));
}

TEST_F(FileWatcherTest, ReportsACreatedFile) {
  start();
  write_file(path("new.js"), "x");
  EXPECT_EQ(next_report(), path("new.js"));
}

TEST_F(FileWatcherTest, ReportsADeletedFile) {
  write_file(path("old.js"), "x");
  start();
  fs::remove(path("old.js"));
  EXPECT_EQ(next_report(), path("old.js"));
}

TEST_F(FileWatcherTest, ReportsChangesInExistingSubdirectories) {
  fs::create_directories(path("src/lib"));
  write_file(path("src/lib/util.js"), "v1");
  start();
  write_file(path("src/lib/util.js"), "v2");
  EXPECT_EQ(next_report(), path("src/lib/util.js"));
}

TEST_F(FileWatcherTest, WatchesADirectoryCreatedAfterStart) {
  start();
  fs::create_directory(path("fresh"));
  EXPECT_EQ(next_report(), path("fresh"));
  write_file(path("fresh/inside.js"), "x");
  EXPECT_EQ(next_report(), path("fresh/inside.js"));
}

TEST_F(FileWatcherTest, WatchesADirectoryMovedIntoTheTree) {
  TempDir outside;
  fs::create_directories(outside.path() / "pkg/deep");
  start();
  fs::rename(outside.path() / "pkg", path("pkg"));
  EXPECT_EQ(next_report(), path("pkg"));
  write_file(path("pkg/deep/file.js"), "x");
  EXPECT_EQ(next_report(), path("pkg/deep/file.js"));
}

TEST_F(FileWatcherTest, BurstOfChangesGivesOneReportWithTheFirstPath) {
  write_file(path("a.js"), "");
  start();
  for (int i = 0; i < 100; ++i) write_file(path(i % 2 ? "a.js" : "b.js"), std::to_string(i));
  EXPECT_EQ(next_report(), path("b.js"));
  // A second report for the same burst would come before this one.
  write_file(path("marker"), "x");
  EXPECT_EQ(next_report(), path("marker"));
  EXPECT_EQ(reported_.size(), 2u);
}

TEST_F(FileWatcherTest, IgnoresGlobsOnBaseNameAndRelativePath) {
  fs::create_directories(path("build/obj"));
  fs::create_directories(path("logs"));
  options_.ignore_globs = {"*.log", "build", "logs/*"};
  start();
  write_file(path("server.log"), "x");
  write_file(path("build/obj/a.o"), "x");
  write_file(path("logs/today.txt"), "x");
  fs::create_directory(path("build/new"));
  write_file(path("app.js"), "x");
  EXPECT_EQ(next_report(), path("app.js"));
}

TEST_F(FileWatcherTest, IgnoresDotfilesAndDotDirectories) {
  fs::create_directories(path(".git/objects"));
  start();
  write_file(path(".env"), "x");
  write_file(path(".git/objects/abc"), "x");
  write_file(path(".git/index"), "x");
  write_file(path("app.js"), "x");
  EXPECT_EQ(next_report(), path("app.js"));
}

TEST_F(FileWatcherTest, RespectsSempreignore) {
  fs::create_directories(path("node_modules/left-pad"));
  fs::create_directories(path("tmp"));
  write_file(path(".sempreignore"),
             "# dependencies\n"
             "node_modules\n"
             "\n"
             "  *.tmp  \n"
             "tmp/\n");
  start();
  write_file(path("node_modules/left-pad/index.js"), "x");
  write_file(path("scratch.tmp"), "x");
  write_file(path("tmp/cache"), "x");
  // A comment line is no glob: a file named like it is reported.
  write_file(path("# dependencies"), "x");
  EXPECT_EQ(next_report(), path("# dependencies"));
}

TEST_F(FileWatcherTest, RespectsIgnorePaths) {
  options_.ignore_paths = {path("app.out.log"), dir_.path().string() + "/./sub/../app.err.log"};
  start();
  write_file(path("app.out.log"), "x");
  write_file(path("app.err.log"), "x");
  write_file(path("app.js"), "x");
  EXPECT_EQ(next_report(), path("app.js"));
}

TEST_F(FileWatcherTest, WatchesASingleFileAndNotItsSiblings) {
  write_file(path("config.json"), "v1");
  write_file(path("other.json"), "v1");
  options_.paths = {path("config.json")};
  start();
  write_file(path("other.json"), "v2");
  write_file(path("config.json"), "v2");
  EXPECT_EQ(next_report(), path("config.json"));
}

TEST_F(FileWatcherTest, SeesAFileReplacedByRename) {
  write_file(path("config.json"), "v1");
  options_.paths = {path("config.json")};
  start();
  write_file(path("config.json.swp"), "v2");
  fs::rename(path("config.json.swp"), path("config.json"));
  EXPECT_EQ(next_report(), path("config.json"));
  write_file(path("config.json"), "v3");
  EXPECT_EQ(next_report(), path("config.json"));
}

TEST_F(FileWatcherTest, WatchesARootInsideADotDirectory) {
  fs::create_directories(path(".config/app"));
  options_.paths = {path(".config/app")};
  start();
  write_file(path(".config/app/settings"), "x");
  EXPECT_EQ(next_report(), path(".config/app/settings"));
}

TEST_F(FileWatcherTest, MissingPathIsNotFoundAndNamed) {
  options_.paths = {dir_.path().string(), path("no-such-dir")};
  auto created =
      FileWatcher::create(io_.get_executor(), *clock_, options_, [](const std::string&) {});
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().kind, ErrorKind::kNotFound);
  EXPECT_NE(created.error().message.find(path("no-such-dir")), std::string::npos)
      << created.error().message;
}

TEST_F(FileWatcherTest, NoPathsIsInvalid) {
  options_.paths.clear();
  auto created =
      FileWatcher::create(io_.get_executor(), *clock_, options_, [](const std::string&) {});
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().kind, ErrorKind::kInvalidArgument);
}

TEST_F(FileWatcherTest, EachBatchOfChangesRestartsTheDebounceWindow) {
  FakeClock clock;
  start_with(clock);
  write_file(path("first.js"), "x");
  ASSERT_TRUE(run_until(io_, [&] { return clock.pending() == 1; }));
  clock.advance(40ms);
  write_file(path("second.js"), "x");
  ASSERT_TRUE(run_until(io_, [&] { return clock.next_timer() == Clock::Duration(50ms); }));
  EXPECT_EQ(clock.pending(), 1u);
  clock.advance(40ms);
  EXPECT_TRUE(reported_.empty());
  clock.advance(10ms);
  ASSERT_EQ(reported_.size(), 1u);
  EXPECT_EQ(reported_[0], path("first.js"));
}

TEST_F(FileWatcherTest, DestroyingWithPendingWorkIsSafe) {
  FakeClock clock;
  start_with(clock);
  write_file(path("app.js"), "x");
  ASSERT_TRUE(run_until(io_, [&] { return clock.pending() == 1; }));
  write_file(path("app.js"), "y");  // unread events, a pending wait and an armed timer
  watcher_.reset();
  EXPECT_EQ(clock.pending(), 0u);
  io_.poll();  // the aborted wait completes and must touch nothing
  clock.advance(1s);
  EXPECT_TRUE(reported_.empty());
}

TEST_F(FileWatcherTest, CallbackMayDestroyTheWatcher) {
  auto created = FileWatcher::create(io_.get_executor(), *clock_, options_,
                                     [this](const std::string& changed) {
                                       reported_.push_back(changed);
                                       watcher_.reset();
                                     });
  ASSERT_TRUE(created.ok()) << created.error().message;
  watcher_ = std::move(*created);
  write_file(path("app.js"), "x");
  EXPECT_EQ(next_report(), path("app.js"));
  EXPECT_EQ(watcher_, nullptr);
  io_.poll();
}

}  // namespace
}  // namespace sempre
