// The config files the daemon remembers: what is kept of each, and when a
// reload is asked for (SIGHUP, or a change on disk of a watched file, after
// the debounce on a fake clock).
#include "config_sources.hpp"

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <boost/asio/io_context.hpp>
#include <sstream>

#include "monitor/fake_clock.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;
using test::run_until;
using test::TempDir;
using test::write_file;

using Env = std::vector<std::string>;

class ConfigSourcesTest : public ::testing::Test {
 protected:
  ConfigSourcesTest() {
    write_file(file_, "[apps.web]\ncmd = \"sleep 100\"\n");
    write_file(other_, "");
  }

  // The reloads asked for, as "PATH (why)".
  std::vector<std::string> reloads_;
  TempDir dir_;
  const std::string file_ = dir_.file("apps.toml");
  const std::string other_ = dir_.file("more.toml");
  boost::asio::io_context io_;
  FakeClock clock_;
  std::ostringstream log_text_;
  std::shared_ptr<spdlog::logger> log_ = std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_st>(log_text_));
  ConfigSources sources_{io_.get_executor(), clock_, log_,
                         [this](const std::string& path, const std::string& why) {
                           reloads_.push_back(path + " (" + why + ")");
                         }};
};

TEST_F(ConfigSourcesTest, RemembersEachFileWithItsEnvironment) {
  EXPECT_EQ(sources_.find(file_), nullptr);
  sources_.remember(file_, {"PORT=80"}, false);
  ASSERT_NE(sources_.find(file_), nullptr);
  EXPECT_EQ(sources_.find(file_)->env, (Env{"PORT=80"}));
  EXPECT_FALSE(sources_.find(file_)->watch);
  sources_.remember(file_, {"PORT=81"}, false);  // --update-env
  EXPECT_EQ(sources_.find(file_)->env, (Env{"PORT=81"}));
}

TEST_F(ConfigSourcesTest, SavedListsEveryFileByPath) {
  sources_.remember(other_, {"B=2"}, true);
  sources_.remember(file_, {"A=1"}, false);
  const std::vector<SavedSource> saved = sources_.saved();
  ASSERT_EQ(saved.size(), 2u);
  EXPECT_EQ(saved[0].path, file_);
  EXPECT_EQ(saved[0].env, (Env{"A=1"}));
  EXPECT_FALSE(saved[0].watch);
  EXPECT_EQ(saved[1].path, other_);
  EXPECT_TRUE(saved[1].watch);
}

TEST_F(ConfigSourcesTest, OnceWatchedAFileStaysWatched) {
  sources_.remember(file_, {}, true);
  sources_.remember(file_, {}, false);
  EXPECT_TRUE(sources_.find(file_)->watch);
}

TEST_F(ConfigSourcesTest, ReloadAllAsksForEveryFileByPath) {
  sources_.remember(other_, {}, false);
  sources_.remember(file_, {}, true);
  sources_.reload_all("SIGHUP");
  EXPECT_EQ(reloads_, (std::vector<std::string>{file_ + " (SIGHUP)", other_ + " (SIGHUP)"}));
}

TEST_F(ConfigSourcesTest, AWatchedFileIsReloadedOnceItsChangesSettle) {
  sources_.remember(file_, {}, true);
  EXPECT_NE(log_text_.str().find("watching " + file_ + " for changes"), std::string::npos);
  write_file(file_, "[apps.web]\ncmd = \"sleep 200\"\n");
  ASSERT_TRUE(run_until(io_, [&] { return clock_.pending() == 1; }));
  clock_.advance(199ms);
  EXPECT_TRUE(reloads_.empty());
  clock_.advance(1ms);
  EXPECT_EQ(reloads_, (std::vector<std::string>{file_ + " (changed on disk)"}));
}

TEST_F(ConfigSourcesTest, AFileThatCannotBeWatchedIsStillRememberedAndTriedAgain) {
  const std::string missing = dir_.file("gone.toml");
  sources_.remember(missing, {"A=1"}, true);
  EXPECT_NE(log_text_.str().find("cannot watch " + missing), std::string::npos);
  ASSERT_NE(sources_.find(missing), nullptr);
  EXPECT_TRUE(sources_.find(missing)->watch);

  write_file(missing, "");
  sources_.remember(missing, {"A=1"}, false);
  EXPECT_NE(log_text_.str().find("watching " + missing + " for changes"), std::string::npos);
}

TEST_F(ConfigSourcesTest, NoReloadOnceDestroyed) {
  auto sources = std::make_unique<ConfigSources>(
      io_.get_executor(), clock_, log_,
      [this](const std::string& path, const std::string&) { reloads_.push_back(path); });
  sources->remember(file_, {}, true);
  write_file(file_, "x");
  ASSERT_TRUE(run_until(io_, [&] { return clock_.pending() == 1; }));
  sources.reset();
  EXPECT_EQ(clock_.pending(), 0u);
  clock_.advance(1s);
  io_.poll();
  EXPECT_TRUE(reloads_.empty());
}

}  // namespace
}  // namespace sempre
