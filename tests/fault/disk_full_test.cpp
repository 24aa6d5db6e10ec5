// Fault scenario for a full disk (needs root, for file systems of its own):
// an app's log fills up and frees again, several times, under a ticker; then
// the home fills up while commands change what must be saved, and the worker
// is killed once the space is back. Counted exactly: the bytes said dropped
// against the numbered lines missing from the log, the log-error and
// log-resumed lines of the daemon's log, pids and restarts, and what a new
// worker restores.
//
// SEMPRE_FAULT_FILLS=N fills the log's file system N times (default 3).
#include <iostream>
#include <optional>
#include <regex>

#include "fault/fault_fixture.hpp"

namespace sempre::fault {
namespace {

class DiskFull : public FaultScenario {
 protected:
  void TearDown() override {
    if (tiny_) tiny_->unfill();
    FaultScenario::TearDown();
    tiny_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A tmpfs of `size` at `path`, there until the daemon is gone (after
  // TearDown()).
  test::TinyFs& tiny(const std::string& path, const std::string& size) {
    return tiny_.emplace(path, size);
  }

  std::optional<test::TinyFs> tiny_;
};
constexpr auto npos = std::string::npos;

long count_matches(const std::string& text, const std::regex& pattern) {
  return static_cast<long>(std::distance(std::sregex_iterator(text.begin(), text.end(), pattern),
                                         std::sregex_iterator()));
}

TEST_F(DiskFull, WhatIsDroppedIsExactlyWhatIsCountedAndTheAppNeverNotices) {
  const int fills = env_number("SEMPRE_FAULT_FILLS", 3);
  test::TinyFs& logs = tiny(dir_ + "/logs", "256k");
  if (!logs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(logs.error());
  const std::string log = dir_ + "/logs/ticker.out.log";
  ASSERT_EQ(start("ticker", {kChild, "tick", "1"}, {"-o", log}), 0);
  const pid_t pid = pid_of(apps().at("ticker"));
  ASSERT_GT(pid, 0);

  std::int64_t dropped = 0;
  for (int f = 0; f < fills; ++f) {
    const std::size_t size = test::read_file(log).size();
    ASSERT_TRUE(test::eventually([&] { return test::read_file(log).size() >= size + 900; }));
    ASSERT_TRUE(logs.fill()) << "round " << f;
    ASSERT_TRUE(test::eventually([&] {
      const auto listed = apps();
      return number(listed.at("ticker"), "out_dropped_bytes") >= dropped + 100 * 9;
    })) << "round "
        << f;
    logs.unfill();
    json::object app;
    ASSERT_TRUE(test::eventually([&] {
      app = apps().at("ticker");
      return app.at("last_error").as_string().empty();
    })) << "round "
        << f << ": " << app;
    EXPECT_EQ(pid_of(app), pid) << "round " << f;
    EXPECT_EQ(number(app, "restarts"), 0) << "round " << f;
    dropped = number(app, "out_dropped_bytes");
  }
  ASSERT_EQ(sempre({"stop", "ticker"}), 0);
  const json::object stopped = apps().at("ticker");
  dropped = number(stopped, "out_dropped_bytes");

  const Ticks ticks = count_ticks(test::read_file(log));
  const std::string daemon_log = test::read_file(home_ + "/sempred.log");
  const long began = count_matches(daemon_log, std::regex("log-error pid=\\d+ " + log));
  const long ended = count_matches(daemon_log, std::regex("log-resumed pid=\\d+ " + log));
  std::cout << "fills: " << fills << "; bytes dropped in all: " << dropped
            << "; ticker lines checked: " << ticks.checked
            << ", missing from the log: " << ticks.lost << ", written twice: " << ticks.doubled
            << "; log-error " << began << ", log-resumed " << ended << "\n";
  EXPECT_EQ(began, fills);
  EXPECT_EQ(ended, fills);
  EXPECT_EQ(ticks.doubled, 0);
  // Whole lines of 9 bytes each are dropped, and each one is counted.
  EXPECT_GT(ticks.lost, 0);
  EXPECT_EQ(ticks.lost * 9, dropped);
}

// The home full: every command that changes what is saved answers 1, the
// starts change nothing, the stops are done and saved by the daemon once
// there is room, and a worker killed then restores exactly that.
TEST_F(DiskFull, NoChangeIsLostWhenTheStateCannotBeSaved) {
  test::TinyFs& home = tiny(home_, "1m");
  if (!home.mounted()) GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(home.error());
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_EQ(start(name, {kChild, "sleep", "forever"}), 0) << name;
  }
  ASSERT_EQ(sempre({"stop", "c"}), 0);

  ASSERT_TRUE(home.fill());
  std::string out;
  int refused = 0;
  int unsaved = 0;
  refused += start("new", {kChild, "sleep", "forever"}) == 1;
  refused += sempre({"restart", "c"}, &out) == 1 && out.find("nothing was changed") != npos;
  unsaved += sempre({"stop", "a"}, &out) == 1 && out.find("could not save state: No space") != npos;
  unsaved += sempre({"delete", "b"}, &out) == 1 && out.find("not saved yet") != npos;
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(unsaved, 2);
  EXPECT_TRUE(copies("new").empty());
  EXPECT_TRUE(copies("c").empty());
  EXPECT_TRUE(copies("a").empty());
  EXPECT_TRUE(copies("b").empty());

  home.unfill();
  // The daemon's own retry saves it; then the worker dies.
  const std::string state = home_ + "/state.json";
  ASSERT_TRUE(test::eventually([&] {
    const std::string text = test::read_file(state);
    return text.find("\"name\":\"b\"") == npos && text.find("\"wanted_up\":true") == npos;
  })) << test::read_file(state);
  const std::vector<pid_t> worker = workers();
  ASSERT_EQ(worker.size(), 1u);
  ASSERT_EQ(::kill(worker.front(), SIGKILL), 0);
  ASSERT_TRUE(test::wait_for_exit(worker.front()));

  const std::map<std::string, json::object> restored = apps();
  std::string names;
  for (const auto& [name, app] : restored) {
    names += name + ":" + std::string(app.at("status").as_string()) + " ";
  }
  std::cout << "refused: " << refused << ", done but saved late: " << unsaved
            << "; restored after the worker's death: " << names << "\n";
  EXPECT_EQ(names, "a:stopped c:stopped ");
  EXPECT_TRUE(copies("a").empty());
  EXPECT_TRUE(copies("c").empty());
}

}  // namespace
}  // namespace sempre::fault
