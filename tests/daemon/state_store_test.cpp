#include "state_store.hpp"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "protocol.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

namespace fs = std::filesystem;
using test::read_file;
using test::TempDir;
using test::write_file;

SavedApp app_of(std::uint64_t id, const std::string& name) {
  SavedApp app;
  app.id = id;
  app.spec.name = name;
  app.spec.monitor.argv = {"sleep", "100"};
  return app;
}

SavedState two_apps() {
  SavedState state;
  state.next_id = 5;
  SavedApp web = app_of(1, "web");
  web.wanted_up = true;
  web.pid = 4321;
  web.pid_start_time = 987654321;
  web.spec.monitor.env = {"PORT=80"};
  web.spec.monitor.kill_signal = SIGINT;
  SavedApp worker = app_of(4, "worker");
  worker.wanted_up = false;
  worker.pid = 99;
  worker.pid_start_time = 18446744073709551615u;
  state.apps = {web, worker};
  return state;
}

// The files in `dir`, by name.
std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

LoadedState load_ok(const std::string& path) {
  auto loaded = load_state(path);
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.error().message);
  return loaded.ok() ? *loaded : LoadedState{};
}

TEST(StateStore, RoundTripsAppsWithPidsAndStartTimes) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  const SavedState saved = two_apps();
  ASSERT_TRUE(save_state(path, saved).ok());

  const LoadedState loaded = load_ok(path);
  EXPECT_TRUE(loaded.warnings.empty());
  EXPECT_EQ(loaded.state.next_id, 5u);
  ASSERT_EQ(loaded.state.apps.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const SavedApp& a = saved.apps[i];
    const SavedApp& b = loaded.state.apps[i];
    EXPECT_EQ(b.id, a.id);
    EXPECT_EQ(b.wanted_up, a.wanted_up);
    EXPECT_EQ(b.pid, a.pid);
    EXPECT_EQ(b.pid_start_time, a.pid_start_time);
    EXPECT_EQ(protocol::to_json(b.spec), protocol::to_json(a.spec));
  }
}

TEST(StateStore, RoundTripsConfigSourcesAndEachAppsSource) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  SavedState saved = two_apps();
  saved.apps[0].source = "/srv/apps.toml";
  saved.sources = {{"/srv/apps.toml", {"PATH=/bin", "A=b=c"}, true}, {"/etc/more.toml", {}, false}};
  ASSERT_TRUE(save_state(path, saved).ok());

  const LoadedState loaded = load_ok(path);
  ASSERT_EQ(loaded.state.apps.size(), 2u);
  EXPECT_EQ(loaded.state.apps[0].source, "/srv/apps.toml");
  EXPECT_EQ(loaded.state.apps[1].source, "");
  ASSERT_EQ(loaded.state.sources.size(), 2u);
  EXPECT_EQ(loaded.state.sources[0].path, "/srv/apps.toml");
  EXPECT_EQ(loaded.state.sources[0].env, (std::vector<std::string>{"PATH=/bin", "A=b=c"}));
  EXPECT_TRUE(loaded.state.sources[0].watch);
  EXPECT_FALSE(loaded.state.sources[1].watch);
}

TEST(StateStore, WritesTheDocumentedFormat) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  SavedState state;
  state.next_id = 2;
  state.apps = {app_of(1, "web")};
  ASSERT_TRUE(save_state(path, state).ok());

  const boost::json::object root = boost::json::parse(read_file(path)).as_object();
  EXPECT_EQ(root.at("version"), kStateVersion);
  EXPECT_EQ(root.at("next_id"), 2);
  const boost::json::object& app = root.at("apps").as_array().at(0).as_object();
  EXPECT_EQ(app.at("id"), 1);
  EXPECT_EQ(app.at("wanted_up"), false);
  EXPECT_TRUE(app.at("pid").is_null());
  EXPECT_TRUE(app.at("pid_start_time").is_null());
  EXPECT_EQ(app.at("spec").at("name"), "web");
}

// A state.json as version 1 has always been written, byte for byte: a daemon
// must read it after an upgrade, and a change of the wire's codec must not
// change it.
const char kGoldenState[] =
    R"({"version":1,"next_id":3,"apps":[{"id":1,"wanted_up":true,"pid":4242,)"
    R"("pid_start_time":123456,"source":"/srv/apps.toml","restarts":2,"spec":{"name":"web",)"
    R"("cmd":["node","server.js"],"interpreter":"/usr/bin/node","cwd":"/srv",)"
    R"("env":["PORT=8080","A=b=c"],"user":"www","group":"www","umask":18,)"
    R"("restart":"on-failure","max_restarts":10,"min_uptime_ms":1500,"restart_delay_ms":250,)"
    R"("backoff_max_ms":60000,"kill_signal":"INT","kill_timeout_ms":8000,)"
    R"("out":"/h/logs/web.out.log","err":"/h/logs/web.err.log","append":true,)"
    R"("log_max_size":1048576,"log_keep":3,"log_timestamps":true,"watch":["/srv/src"],)"
    R"("watch_ignore":["*.tmp"],"watch_debounce_ms":300,"pid_file":"/run/web.pid",)"
    R"("ready":"tcp:8080","autostart":true}},{"id":2,"wanted_up":false,"pid":null,)"
    R"("pid_start_time":null,"spec":{"name":"job","cmd":["true"],"interpreter":"","cwd":"",)"
    R"("env":[],"user":"","group":"","umask":null,"restart":"never","max_restarts":null,)"
    R"("min_uptime_ms":0,"restart_delay_ms":0,"backoff_max_ms":0,"kill_signal":"TERM",)"
    R"("kill_timeout_ms":0,"out":"","err":"","append":false,"log_max_size":0,"log_keep":0,)"
    R"("log_timestamps":false,"watch":[],"watch_ignore":[],"watch_debounce_ms":0,)"
    R"("pid_file":"","ready":"","autostart":false}}],"sources":[{"path":"/srv/apps.toml",)"
    R"("env":["PATH=/bin"],"watch":true}]})"
    "\n";

// What this version writes for golden_state(): version 1 still (a daemon of
// kGoldenState's time reads it, ignoring the fields it does not know), the
// spec's hand-written keys first, then each row of the option schema.
const char kWrittenState[] =
    R"({"version":1,"next_id":3,"apps":[{"id":1,"wanted_up":true,"pid":4242,)"
    R"("pid_start_time":123456,"source":"/srv/apps.toml","restarts":2,"spec":{"name":"web",)"
    R"("cmd":["node","server.js"],"cwd":"/srv","env":["PORT=8080","A=b=c"],)"
    R"("out":"/h/logs/web.out.log","err":"/h/logs/web.err.log","watch":["/srv/src"],)"
    R"("interpreter":"/usr/bin/node","user":"www","group":"www","umask":18,"nice":null,)"
    R"("limit_nofile":null,"restart":"on-failure","max_restarts":10,"min_uptime_ms":1500,)"
    R"("restart_delay_ms":250,"backoff_max_ms":60000,"kill_signal":"INT","kill_timeout_ms":8000,)"
    R"("append":true,"log_max_size":1048576,"log_keep":3,"log_timestamps":true,)"
    R"("watch_ignore":["*.tmp"],"watch_debounce_ms":300,"pid_file":"/run/web.pid",)"
    R"("ready":"tcp:8080","autostart":true}},{"id":2,"wanted_up":false,"pid":null,)"
    R"("pid_start_time":null,"spec":{"name":"job","cmd":["true"],"cwd":"","env":[],"out":"",)"
    R"("err":"","watch":[],"interpreter":"","user":"","group":"","umask":null,"nice":null,)"
    R"("limit_nofile":null,"restart":"never","max_restarts":null,"min_uptime_ms":0,)"
    R"("restart_delay_ms":0,"backoff_max_ms":0,"kill_signal":"TERM","kill_timeout_ms":0,)"
    R"("append":false,"log_max_size":0,"log_keep":0,"log_timestamps":false,"watch_ignore":[],)"
    R"("watch_debounce_ms":0,"pid_file":"","ready":"","autostart":false}}],)"
    R"("sources":[{"path":"/srv/apps.toml","env":["PATH=/bin"],"watch":true}]})"
    "\n";

// What kGoldenState holds.
SavedState golden_state() {
  SavedState state;
  state.next_id = 3;
  SavedApp web;
  web.id = 1;
  web.wanted_up = true;
  web.pid = 4242;
  web.pid_start_time = 123456;
  web.source = "/srv/apps.toml";
  web.restarts = 2;
  web.spec.name = "web";
  MonitorOptions& m = web.spec.monitor;
  m.argv = {"node", "server.js"};
  m.interpreter = "/usr/bin/node";
  m.cwd = "/srv";
  m.env = {"PORT=8080", "A=b=c"};
  m.user = "www";
  m.group = "www";
  m.umask = 022;
  m.restart = RestartMode::kOnFailure;
  m.max_restarts = 10;
  m.min_uptime = Millis{1500};
  m.restart_delay = Millis{250};
  m.backoff_max = Millis{60000};
  m.kill_signal = SIGINT;
  m.kill_timeout = Millis{8000};
  m.logs.out_path = "/h/logs/web.out.log";
  m.logs.err_path = "/h/logs/web.err.log";
  m.logs.append = true;
  m.logs.max_size = 1048576;
  m.logs.keep = 3;
  m.logs.timestamps = true;
  m.watch = {"/srv/src"};
  m.watch_ignore = {"*.tmp"};
  m.watch_debounce = Millis{300};
  m.pid_file = "/run/web.pid";
  m.ready = "tcp:8080";
  web.spec.autostart = true;

  SavedApp job;
  job.id = 2;
  job.spec.name = "job";
  MonitorOptions& j = job.spec.monitor;
  j.argv = {"true"};
  j.umask.reset();
  j.restart = RestartMode::kNever;
  j.max_restarts.reset();
  j.min_uptime = j.restart_delay = j.backoff_max = j.kill_timeout = j.watch_debounce = Millis{0};
  j.kill_signal = SIGTERM;
  j.logs.append = false;
  j.logs.max_size = 0;
  j.logs.keep = 0;
  j.logs.timestamps = false;
  job.spec.autostart = false;

  state.apps = {web, job};
  state.sources = {{"/srv/apps.toml", {"PATH=/bin"}, true}};
  return state;
}

TEST(StateStore, ReadsTheGoldenFileOfVersion1) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  write_file(path, kGoldenState);
  const LoadedState loaded = load_ok(path);
  EXPECT_TRUE(loaded.warnings.empty());
  const SavedState expected = golden_state();
  EXPECT_EQ(loaded.state.next_id, expected.next_id);
  ASSERT_EQ(loaded.state.apps.size(), expected.apps.size());
  for (std::size_t i = 0; i < expected.apps.size(); ++i) {
    const SavedApp& got = loaded.state.apps[i];
    const SavedApp& want = expected.apps[i];
    EXPECT_EQ(got.id, want.id);
    EXPECT_EQ(got.wanted_up, want.wanted_up);
    EXPECT_EQ(got.pid, want.pid);
    EXPECT_EQ(got.pid_start_time, want.pid_start_time);
    EXPECT_EQ(got.source, want.source);
    EXPECT_EQ(got.restarts, want.restarts);
    EXPECT_EQ(got.out_dropped, want.out_dropped);
    EXPECT_EQ(got.err_dropped, want.err_dropped);
    EXPECT_TRUE(got.spec == want.spec) << "apps[" << i << "].spec";
  }
  ASSERT_EQ(loaded.state.sources.size(), 1u);
  EXPECT_EQ(loaded.state.sources[0].path, "/srv/apps.toml");
  EXPECT_EQ(loaded.state.sources[0].env, (std::vector<std::string>{"PATH=/bin"}));
  EXPECT_TRUE(loaded.state.sources[0].watch);
}

TEST(StateStore, WritesTheGoldenFileByteForByte) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  ASSERT_TRUE(save_state(path, golden_state()).ok());
  EXPECT_EQ(read_file(path), kWrittenState);
  // And it reads back to the same state.
  const LoadedState loaded = load_ok(path);
  ASSERT_EQ(loaded.state.apps.size(), 2u);
  EXPECT_TRUE(loaded.state.apps[0].spec == golden_state().apps[0].spec);
  EXPECT_TRUE(loaded.state.apps[1].spec == golden_state().apps[1].spec);
}

// The bytes of output the logs lost are kept across daemons, and a file
// of version 1 without them reads as none lost.
TEST(StateStore, KeepsTheCountsOfLostOutput) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  SavedState state = golden_state();
  state.apps[0].out_dropped = 5'000'000'000;
  state.apps[0].err_dropped = 17;
  ASSERT_TRUE(save_state(path, state).ok());
  EXPECT_NE(read_file(path).find("\"out_dropped_bytes\":5000000000,\"err_dropped_bytes\":17"),
            std::string::npos)
      << read_file(path);
  auto loaded = load_state(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->state.apps[0].out_dropped, 5'000'000'000u);
  EXPECT_EQ(loaded->state.apps[0].err_dropped, 17u);
  EXPECT_EQ(loaded->state.apps[1].out_dropped, 0u);
}

TEST(StateStore, AtomicWriteLeavesNoTemporaryFileAndIsPrivate) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  // A leftover temporary file of a crashed write, readable by all.
  write_file(path + ".tmp", "partial");
  ASSERT_EQ(::chmod((path + ".tmp").c_str(), 0644), 0);

  ASSERT_TRUE(save_state(path, two_apps()).ok());
  SavedState smaller;
  smaller.apps = {app_of(1, "only")};
  ASSERT_TRUE(save_state(path, smaller).ok());

  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"state.json"}));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(load_ok(path).state.apps.size(), 1u);
}

TEST(StateStore, SaveFailsWhenTheDirectoryIsMissing) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/state.json");
  Status st = save_state(path, two_apps());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().os_error, ENOENT);
  EXPECT_NE(st.error().message.find(path + ".tmp"), std::string::npos) << st.error().message;
}

TEST(StateStore, MissingFileIsAnEmptyState) {
  TempDir dir;
  const LoadedState loaded = load_ok(dir.file("state.json"));
  EXPECT_TRUE(loaded.warnings.empty());
  EXPECT_TRUE(loaded.state.apps.empty());
  EXPECT_EQ(loaded.state.next_id, 1u);
}

// The one file next to state.json whose name starts with "state.json.bad-".
std::string set_aside_file(const TempDir& dir) {
  std::string found;
  for (const std::string& name : names_in(dir.path())) {
    if (name.rfind("state.json.bad-", 0) == 0) {
      EXPECT_EQ(found, "") << "more than one file set aside";
      found = dir.file(name);
    }
  }
  return found;
}

TEST(StateStore, ADirectoryIsLeftAloneAndSaidAndSavingFails) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  fs::create_directory(path);
  write_file(path + "/mine", "the user's");
  const LoadedState loaded = load_ok(path);
  EXPECT_TRUE(loaded.state.apps.empty());
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_NE(loaded.warnings[0].find(path + " is a directory"), std::string::npos)
      << loaded.warnings[0];
  EXPECT_NE(loaded.warnings[0].find("no change is saved"), std::string::npos) << loaded.warnings[0];
  EXPECT_TRUE(fs::is_directory(path)) << "a directory is not set aside";

  const Status saved = save_state(path, two_apps());
  ASSERT_FALSE(saved.ok()) << "a save over a directory must fail, not go unseen";
  EXPECT_EQ(read_file(path + "/mine"), "the user's");
}

TEST(StateStore, AFileThatCannotBeReadIsSetAsideAndSaid) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir;
  const std::string path = dir.file("state.json");
  ASSERT_TRUE(save_state(path, two_apps()).ok());
  const std::string content = read_file(path);
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  const LoadedState loaded = load_ok(path);
  EXPECT_TRUE(loaded.state.apps.empty());
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_NE(loaded.warnings[0].find(path + " cannot be read (Permission denied)"),
            std::string::npos)
      << loaded.warnings[0];
  EXPECT_FALSE(fs::exists(path)) << "the next save must not replace the user's file";
  const std::string aside = set_aside_file(dir);
  ASSERT_NE(aside, "");
  EXPECT_NE(loaded.warnings[0].find("set aside as " + aside), std::string::npos)
      << loaded.warnings[0];
  ASSERT_EQ(::chmod(aside.c_str(), 0600), 0);
  EXPECT_EQ(read_file(aside), content);
}

TEST(StateStore, AFileThatCanBeNeitherReadNorSetAsideIsAnError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file and writes any directory";
  TempDir dir;
  const std::string path = dir.file("state.json");
  ASSERT_TRUE(save_state(path, two_apps()).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0500), 0);
  auto loaded = load_state(path);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find(path + " cannot be read"), std::string::npos)
      << loaded.error().message;
  EXPECT_NE(loaded.error().message.find("cannot move"), std::string::npos)
      << loaded.error().message;
  EXPECT_TRUE(fs::exists(path));
}

void expect_set_aside(const std::string& content, const std::string& reason) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  write_file(path, content);

  const LoadedState loaded = load_ok(path);
  EXPECT_TRUE(loaded.state.apps.empty());
  EXPECT_EQ(loaded.state.next_id, 1u);
  EXPECT_FALSE(fs::exists(path));
  const std::string aside = set_aside_file(dir);
  ASSERT_NE(aside, "") << "nothing set aside for " << content;
  EXPECT_EQ(read_file(aside), content);
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_NE(loaded.warnings[0].find(path + " was damaged ("), std::string::npos)
      << loaded.warnings[0];
  EXPECT_NE(loaded.warnings[0].find("set aside as " + aside + "; no app was restored from it"),
            std::string::npos)
      << loaded.warnings[0];
  EXPECT_NE(loaded.warnings[0].find(reason), std::string::npos) << loaded.warnings[0];

  // The name carries the time it was set aside.
  const std::string suffix = aside.substr(path.size() + std::string(".bad-").size());
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  EXPECT_NEAR(std::stoll(suffix), now, 5);
}

TEST(StateStore, CorruptFileIsSetAsideWithAWarning) {
  expect_set_aside("{\"version\":1,\"next_id\":3,\"apps\":[{\"id\":1", "invalid JSON");
}

TEST(StateStore, EmptyFileIsSetAside) { expect_set_aside("", "invalid JSON"); }

TEST(StateStore, UnknownVersionIsSetAside) {
  expect_set_aside(R"({"version":2,"next_id":1,"apps":[]})", "unknown version 2");
}

TEST(StateStore, AFileWhoseSourcesAreNotAnArrayIsSetAside) {
  expect_set_aside(R"({"version":1,"next_id":1,"apps":[],"sources":{}})",
                   "sources: expected an array");
}

// Loads `content`, which has bad entries among good ones: the good ones are
// kept, the file stays, and a copy of it is kept too. Returns the warnings.
std::vector<std::string> load_with_bad_entries(const std::string& content, LoadedState& loaded) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  write_file(path, content);
  loaded = load_ok(path);
  EXPECT_EQ(read_file(path), content) << "the file stays where it is";
  const std::string copy = set_aside_file(dir);
  EXPECT_NE(copy, "") << "no copy kept";
  EXPECT_EQ(read_file(copy), content);
  for (const std::string& warning : loaded.warnings) {
    EXPECT_EQ(warning.rfind(path + ": ", 0), 0u) << warning;
    EXPECT_NE(warning.find(path + " as it was is kept as " + copy), std::string::npos) << warning;
  }
  return loaded.warnings;
}

TEST(StateStore, OneBadAppAmongGoodOnesIsLeftOutAndSaid) {
  LoadedState loaded;
  const auto warnings = load_with_bad_entries(
      R"({"version":1,"next_id":2,"apps":[)"
      R"({"id":1,"wanted_up":true,"spec":{"name":"web","cmd":["x"]}},)"
      R"({"id":6,"wanted_up":true,"pid":null,"spec":{"name":"api","cmd":"not an array"}},)"
      R"({"id":3,"wanted_up":false,"spec":{"name":"worker","cmd":["y"]}}]})",
      loaded);
  ASSERT_EQ(loaded.state.apps.size(), 2u);
  EXPECT_EQ(loaded.state.apps[0].spec.name, "web");
  EXPECT_EQ(loaded.state.apps[1].spec.name, "worker");
  EXPECT_EQ(loaded.state.next_id, 7u) << "the left-out app's id is never handed out again";
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(R"(app "api" (id 6) was not restored )"
                             R"((apps[1].spec.cmd: expected an array of strings))"),
            std::string::npos)
      << warnings[0];
}

TEST(StateStore, AnAppWithoutWantedStateIsLeftOut) {
  LoadedState loaded;
  const auto warnings = load_with_bad_entries(
      R"({"version":1,"next_id":2,"apps":[{"id":1,"spec":{"name":"w","cmd":["x"]}}]})", loaded);
  EXPECT_TRUE(loaded.state.apps.empty());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(R"(app "w" (id 1) was not restored (apps[0].wanted_up)"),
            std::string::npos)
      << warnings[0];
}

TEST(StateStore, ADuplicateIdOrNameKeepsTheFirstApp) {
  LoadedState loaded;
  const auto warnings =
      load_with_bad_entries(R"({"version":1,"next_id":3,"apps":[)"
                            R"({"id":1,"wanted_up":true,"spec":{"name":"a","cmd":["x"]}},)"
                            R"({"id":1,"wanted_up":true,"spec":{"name":"b","cmd":["x"]}},)"
                            R"({"id":2,"wanted_up":true,"spec":{"name":"a","cmd":["x"]}}]})",
                            loaded);
  ASSERT_EQ(loaded.state.apps.size(), 1u);
  EXPECT_EQ(loaded.state.apps[0].spec.name, "a");
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find(R"(app "b" (id 1) was not restored (apps[1].id: duplicate id 1))"),
            std::string::npos)
      << warnings[0];
  EXPECT_NE(warnings[1].find(R"((apps[2].spec.name: duplicate name "a"))"), std::string::npos)
      << warnings[1];
}

TEST(StateStore, AnEntryThatIsNoAppAndABadSourceAreLeftOut) {
  LoadedState loaded;
  const auto warnings = load_with_bad_entries(
      R"({"version":1,"next_id":2,"apps":[42,{"id":1,"wanted_up":true,)"
      R"("spec":{"name":"a","cmd":["x"]}}],"sources":[{"path":7},{"path":"/etc/apps.toml"}]})",
      loaded);
  ASSERT_EQ(loaded.state.apps.size(), 1u);
  ASSERT_EQ(loaded.state.sources.size(), 1u);
  EXPECT_EQ(loaded.state.sources[0].path, "/etc/apps.toml");
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("an app was not restored (apps[0]: expected an object)"),
            std::string::npos)
      << warnings[0];
  EXPECT_NE(warnings[1].find("a config file to reload was not restored (sources[0].path: "
                             "expected a string)"),
            std::string::npos)
      << warnings[1];
}

TEST(StateStore, SettingAsideTwiceInOneSecondKeepsBoth) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  write_file(path, "first");
  ASSERT_FALSE(load_ok(path).warnings.empty());
  write_file(path, "second");
  ASSERT_FALSE(load_ok(path).warnings.empty());
  std::vector<std::string> contents;
  for (const std::string& name : names_in(dir.path()))
    contents.push_back(read_file(dir.file(name)));
  std::sort(contents.begin(), contents.end());
  EXPECT_EQ(contents, (std::vector<std::string>{"first", "second"}));
}

TEST(StateStore, NextIdStaysPastEveryLoadedId) {
  TempDir dir;
  const std::string path = dir.file("state.json");
  write_file(path, R"({"version":1,"next_id":1,"apps":[)"
                   R"({"id":7,"wanted_up":true,"spec":{"name":"a","cmd":["x"]}}]})");
  const LoadedState loaded = load_ok(path);
  EXPECT_TRUE(loaded.warnings.empty());
  ASSERT_EQ(loaded.state.apps.size(), 1u);
  EXPECT_FALSE(loaded.state.apps[0].pid);
  EXPECT_EQ(loaded.state.next_id, 8u);
}

// --- process_start_time --------------------------------------------------------

// Field 22 of /proc/PID/stat, read independently: the 20th word after ") ".
std::uint64_t start_time_from_proc(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(stat.substr(stat.rfind(')') + 1));
  std::string word;
  for (int field = 3; field <= 22; ++field) in >> word;
  return std::stoull(word);
}

TEST(ProcessStartTime, OfThisProcessIsWhatProcSays) {
  const auto ticks = process_start_time(::getpid());
  ASSERT_TRUE(ticks);
  EXPECT_EQ(*ticks, start_time_from_proc(::getpid()));
}

TEST(ProcessStartTime, IsNulloptForAProcessThatIsGone) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_FALSE(process_start_time(child));
  EXPECT_FALSE(process_start_time(0));
  EXPECT_FALSE(process_start_time(-1));
}

TEST(ProcessStartTime, SurvivesACommandNameWithSpacesAndParentheses) {
  int ready[2];
  int go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char byte = 0;
    (void)!::write(ready[1], "1", 1);
    (void)!::read(go[0], &byte, 1);
    ::prctl(PR_SET_NAME, "x) 1 2 (y z) ", 0, 0, 0);
    (void)!::write(ready[1], "2", 1);
    (void)!::read(go[0], &byte, 1);
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  const auto before = process_start_time(child);
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  EXPECT_NE(read_file("/proc/" + std::to_string(child) + "/stat").find("x) 1 2 (y z"),
            std::string::npos);
  const auto after = process_start_time(child);
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);

  ASSERT_TRUE(before);
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, *before);
}

}  // namespace
}  // namespace sempre
