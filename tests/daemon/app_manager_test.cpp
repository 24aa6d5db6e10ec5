// AppManager answering requests on a fake clock and a fake launcher: no
// process is started, and nothing waits but on the io_context's work. The
// home (state.json, logs) is a real temporary directory.
#include "app_manager.hpp"

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <boost/asio/io_context.hpp>
#include <csignal>
#include <sstream>

#include "app_config.hpp"
#include "daemon/fake_session.hpp"
#include "monitor/fake_clock.hpp"
#include "monitor/fake_launcher.hpp"
#include "protocol.hpp"
#include "state_store.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;
using test::FakeLauncher;
using test::FakeSession;
using test::run_until;
using test::TempDir;
using test::write_file;
namespace json = boost::json;

// Above the kernel's largest pid (PID_MAX_LIMIT, 2^22): the daemon's checks
// of /proc and its signals to an earlier daemon's children can never reach
// a real process.
constexpr pid_t kFirstFakePid = 5'000'000;

AppSpec spec_of(const std::string& name, std::vector<std::string> argv = {"/bin/sleep", "100"}) {
  AppSpec spec;
  spec.name = name;
  spec.monitor.argv = std::move(argv);
  return spec;
}

std::string text(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::vector<std::string> strings(const json::value& v) {
  std::vector<std::string> out;
  for (const auto& e : v.as_array()) out.emplace_back(e.as_string());
  return out;
}

using Names = std::vector<std::string>;

class AppManagerTest : public ::testing::Test {
 protected:
  AppManagerTest() {
    launcher_.next_pid = kFirstFakePid;
    EXPECT_TRUE(prepare_home(paths_).ok());
  }

  AppManager& manager() {
    if (!manager_) {
      manager_ = std::make_unique<AppManager>(io_.get_executor(), paths_, log_,
                                              MonitorSeams{&clock_, &launcher_});
    }
    return *manager_;
  }

  // Sends one request on a new session; the session gets the answer.
  std::shared_ptr<FakeSession> send(const std::string& cmd, json::object args = {}) {
    auto session = std::make_shared<FakeSession>();
    protocol::Request request;
    request.id = ++last_id_;
    request.cmd = cmd;
    request.args = std::move(args);
    manager().handle(request, session);
    return session;
  }

  // The answer of a request, once there is one (the io_context runs until
  // then, or fails the test after run_until's deadline).
  json::object answer(const std::shared_ptr<FakeSession>& session) {
    EXPECT_TRUE(run_until(io_, [&] { return !session->answers().empty(); }));
    const auto answers = session->answers();
    EXPECT_EQ(answers.size(), 1u);
    return answers.empty() ? json::object{} : answers.front();
  }

  json::object result(const std::string& cmd, json::object args = {}) {
    const json::object a = answer(send(cmd, std::move(args)));
    EXPECT_TRUE(a.contains("ok") && a.at("ok").as_bool()) << json::serialize(a);
    const json::value* r = a.if_contains("result");
    return r != nullptr && r->is_object() ? r->as_object() : json::object{};
  }

  // The error of a request that must fail: "code: message".
  std::string error(const std::string& cmd, json::object args = {}) {
    const json::object a = answer(send(cmd, std::move(args)));
    EXPECT_FALSE(a.contains("ok") && a.at("ok").as_bool()) << json::serialize(a);
    const json::value* e = a.if_contains("error");
    if (e == nullptr || !e->is_object()) return {};
    return text(e->as_object(), "code") + ": " + text(e->as_object(), "message");
  }

  json::object start(const AppSpec& spec) {
    return result("start", {{"spec", protocol::to_json(spec)}});
  }

  // Every app of `list`, by id: "ID:NAME:STATUS".
  Names listed() {
    Names out;
    const json::object list = result("list");
    for (const auto& v : list.at("apps").as_array()) {
      const json::object& app = v.as_object();
      out.push_back(std::to_string(app.at("id").as_uint64()) + ":" + text(app, "name") + ":" +
                    text(app, "status"));
    }
    return out;
  }

  // Runs what is ready (posted callbacks), without waiting.
  void settle() {
    io_.restart();
    io_.poll();
  }

  SavedState saved() {
    auto loaded = load_state(paths_.state);
    EXPECT_TRUE(loaded.ok());
    return loaded.ok() ? loaded->state : SavedState{};
  }

  // The argv[1..] of each launch, for telling the runs apart.
  Names launched_args() {
    Names out;
    for (const auto& r : launcher_.requests) {
      std::string args;
      for (std::size_t i = 1; i < r.argv.size(); ++i) args += (i > 1 ? " " : "") + r.argv[i];
      out.push_back(args);
    }
    return out;
  }

  // A config file of sleepers: NAME -> seconds.
  std::string write_apps(const std::vector<std::pair<std::string, int>>& apps) {
    std::string toml;
    for (const auto& [name, seconds] : apps) {
      toml += "[[app]]\nname = \"" + name + "\"\ncmd = [\"/bin/sleep\", \"" +
              std::to_string(seconds) + "\"]\n\n";
    }
    write_file(file_, toml);
    return file_;
  }

  // An apply request for the file as the CLI sends it: its specs as parsed
  // with the CLI's environment.
  json::object apply_args(const std::string& mode, bool dry_run = false) {
    const AppsFile file = load_apps_file(file_, env_);
    EXPECT_TRUE(file.ok());
    json::array specs;
    for (const AppSpec& spec : file.apps) specs.push_back(protocol::to_json(spec));
    json::array env;
    for (const auto& kv : env_) env.emplace_back(kv);
    return {{"file", file_},
            {"mode", mode},
            {"specs", std::move(specs)},
            {"env", std::move(env)},
            {"dry_run", dry_run}};
  }

  TempDir dir_;
  const HomePaths paths_ = home_paths(dir_.file("home"));
  const std::string file_ = dir_.file("apps.toml");
  const std::vector<std::string> env_ = {"PATH=/usr/bin:/bin"};
  boost::asio::io_context io_;
  FakeClock clock_;
  FakeLauncher launcher_;
  std::ostringstream log_text_;
  std::shared_ptr<spdlog::logger> log_ = std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_st>(log_text_));
  std::unique_ptr<AppManager> manager_;
  std::uint64_t last_id_ = 0;
};

TEST_F(AppManagerTest, StartRunsTheAppUnderTheNextIdAndSavesIt) {
  const json::object app = start(spec_of("web")).at("app").as_object();
  EXPECT_EQ(app.at("id").as_uint64(), 1u);
  EXPECT_EQ(app.at("pid").as_int64(), kFirstFakePid);
  EXPECT_EQ(text(app, "status"), "starting");
  EXPECT_EQ(text(app, "wanted"), "up");
  ASSERT_EQ(launcher_.requests.size(), 1u);
  EXPECT_EQ(launcher_.requests[0].argv[0], "/bin/sleep");
  EXPECT_EQ(text(app, "out_log"), paths_.logs_dir + "/web.out.log");

  const SavedState state = saved();
  EXPECT_EQ(state.next_id, 2u);
  ASSERT_EQ(state.apps.size(), 1u);
  EXPECT_EQ(state.apps[0].spec.name, "web");
  EXPECT_TRUE(state.apps[0].wanted_up);
  EXPECT_EQ(state.apps[0].pid, kFirstFakePid);
}

TEST_F(AppManagerTest, AFailedStartConsumesNoId) {
  start(spec_of("web"));
  launcher_.fail_next_errno = ENOENT;
  EXPECT_EQ(
      error("start", {{"spec", protocol::to_json(spec_of("typo"))}}).rfind("spawn_failed: ", 0),
      0u);
  EXPECT_EQ(listed(), (Names{"1:web:starting"}));
  EXPECT_EQ(saved().next_id, 2u);
  EXPECT_EQ(start(spec_of("worker")).at("app").at("id").as_uint64(), 2u);
}

TEST_F(AppManagerTest, ATakenOrInvalidNameIsRefusedBeforeAnythingStarts) {
  start(spec_of("web"));
  EXPECT_EQ(error("start", {{"spec", protocol::to_json(spec_of("web"))}}),
            "exists: an app named \"web\" already exists (id 1); pick another with --name");
  EXPECT_EQ(error("start", {{"spec", protocol::to_json(spec_of("12"))}}),
            "invalid: invalid app name \"12\": a number would read as an id or a pid");
  EXPECT_EQ(launcher_.requests.size(), 1u);
}

TEST_F(AppManagerTest, RestoreStartsTheAppsWantedUpAndNotTheOthers) {
  SavedState state;
  state.next_id = 5;
  SavedApp web;
  web.id = 1;
  web.spec = spec_of("web", {"/bin/sleep", "1"});
  web.wanted_up = true;
  web.restarts = 4;
  SavedApp batch;
  batch.id = 3;
  batch.spec = spec_of("batch", {"/bin/sleep", "3"});
  batch.wanted_up = false;
  ASSERT_TRUE(save_state(paths_.state, {5, {web, batch}, {}}).ok());

  manager().restore();
  EXPECT_EQ(launched_args(), (Names{"1"}));
  EXPECT_EQ(listed(), (Names{"1:web:starting", "3:batch:stopped"}));
  const json::object info = result("info", {{"target", "web"}}).at("app").as_object();
  EXPECT_EQ(info.at("restarts").as_int64(), 4) << "restarts are kept across daemons";
  EXPECT_EQ(start(spec_of("new")).at("app").at("id").as_uint64(), 5u);
}

TEST_F(AppManagerTest, RestoreKeepsTheGoodAppsAndTheFirstListSaysWhatWasLeftOut) {
  write_file(paths_.state,
             R"({"version":1,"next_id":3,"apps":[)"
             R"({"id":1,"wanted_up":true,"spec":{"name":"web","cmd":["/bin/sleep","1"]}},)"
             R"({"id":2,"wanted_up":true,"spec":{"name":"api","cmd":7}}]})");
  manager().restore();
  EXPECT_EQ(launched_args(), (Names{"1"}));
  const json::object first = result("list");
  ASSERT_EQ(first.at("apps").as_array().size(), 1u);
  ASSERT_TRUE(first.contains("warnings")) << json::serialize(first);
  const Names warnings = strings(first.at("warnings"));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(R"(app "api" (id 2) was not restored)"), std::string::npos)
      << warnings[0];
  EXPECT_FALSE(result("list").contains("warnings")) << "said once";
  EXPECT_NE(log_text_.str().find(R"(app "api" (id 2) was not restored)"), std::string::npos)
      << log_text_.str();
}

TEST_F(AppManagerTest, RestoreOfNoStateStartsEmpty) {
  manager().restore();
  EXPECT_TRUE(listed().empty());
  EXPECT_TRUE(launcher_.requests.empty());
}

TEST_F(AppManagerTest, StopKeepsTheAppWantedDownAndRestartBringsItBack) {
  start(spec_of("web"));
  const json::object stopped = result("stop", {{"targets", json::array{"web"}}});
  EXPECT_EQ(text(stopped.at("apps").at(0).as_object(), "wanted"), "down");
  EXPECT_EQ(launcher_.latest()->signals, (std::vector<int>{SIGTERM}));
  EXPECT_FALSE(saved().apps[0].wanted_up);

  const json::object restarted = result("restart", {{"targets", json::array{"1"}}});
  EXPECT_EQ(text(restarted.at("apps").at(0).as_object(), "wanted"), "up");
  EXPECT_EQ(launcher_.requests.size(), 2u);
}

// Saves fail while state.json is a directory (as on a full disk): what would
// start an app is refused, a stop is done and answered as unsaved, and the
// daemon saves it by itself once it can.
TEST_F(AppManagerTest, AStateThatCannotBeSavedRefusesStartsAndRetriesAStopsSave) {
  start(spec_of("web"));
  std::filesystem::remove(paths_.state);
  std::filesystem::create_directory(paths_.state);
  const std::string unsaved =
      "internal: could not save state: Is a directory (" + paths_.state + ")";

  EXPECT_EQ(error("start", {{"spec", protocol::to_json(spec_of("worker"))}}),
            unsaved + "; nothing was changed");
  EXPECT_EQ(listed(), (Names{"1:web:starting"}));
  EXPECT_EQ(launcher_.requests.size(), 1u);
  write_apps({{"batch", 100}});
  EXPECT_EQ(error("apply", apply_args("start")), unsaved + "; nothing was changed");
  EXPECT_EQ(listed(), (Names{"1:web:starting"}));

  EXPECT_EQ(error("stop", {{"targets", json::array{"web"}}})
                .rfind(unsaved + "; the change is made, but not saved yet", 0),
            0u);
  EXPECT_EQ(listed(), (Names{"1:web:stopped"}));
  EXPECT_EQ(error("restart", {{"targets", json::array{"web"}}}), unsaved + "; nothing was changed");
  EXPECT_EQ(listed(), (Names{"1:web:stopped"}));
  EXPECT_EQ(launcher_.requests.size(), 1u);

  std::filesystem::remove(paths_.state);
  clock_.advance(5s);
  settle();
  ASSERT_EQ(saved().apps.size(), 1u);
  EXPECT_FALSE(saved().apps[0].wanted_up);
  EXPECT_NE(log_text_.str().find("saved " + paths_.state + " again"), std::string::npos)
      << log_text_.str();
  // Logged once when it began, not on every try.
  const std::string log = log_text_.str();
  std::size_t failures = 0;
  for (std::size_t at = log.find("cannot save"); at != std::string::npos;
       at = log.find("cannot save", at + 1)) {
    ++failures;
  }
  EXPECT_EQ(failures, 1u) << log;
  EXPECT_EQ(result("restart", {{"targets", json::array{"web"}}}).at("apps").as_array().size(), 1u);
  EXPECT_EQ(launcher_.requests.size(), 2u);
}

TEST_F(AppManagerTest, ATargetIsANameAnIdOrThePidOfARunningApp) {
  start(spec_of("web"));
  start(spec_of("worker"));
  auto names = [&](const json::object& r) {
    Names out;
    for (const auto& app : r.at("apps").as_array()) out.push_back(text(app.as_object(), "name"));
    return out;
  };
  const std::string pid = std::to_string(kFirstFakePid + 1);
  EXPECT_EQ(names(result("info", {{"targets", json::array{pid, "web"}}})),
            (Names{"web", "worker"}));
  EXPECT_EQ(names(result("info", {{"targets", json::array{"2"}}})), (Names{"worker"}));
  EXPECT_EQ(error("stop", {{"targets", json::array{"web", "nope"}}}),
            "not_found: no app matches \"nope\"");
  EXPECT_EQ(launcher_.latest()->signals, std::vector<int>{}) << "nothing was stopped";
}

TEST_F(AppManagerTest, DeleteDuringAStopAnswersBothAndRemovesTheApp) {
  launcher_.exit_on_kill_signal = false;  // it ignores SIGTERM: only SIGKILL ends it
  start(spec_of("web"));
  auto stop = send("stop", {{"targets", json::array{"web"}}});
  settle();
  EXPECT_TRUE(stop->answers().empty()) << "still stopping";
  auto del = send("delete", {{"targets", json::array{"web"}}});
  settle();
  EXPECT_TRUE(del->answers().empty());

  clock_.advance(AppSpec{}.monitor.kill_timeout);
  const json::object stopped = answer(stop);
  const json::object deleted = answer(del);
  EXPECT_TRUE(stopped.at("ok").as_bool());
  EXPECT_TRUE(deleted.at("ok").as_bool());
  EXPECT_EQ(launcher_.latest()->signals, (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_TRUE(listed().empty());
  EXPECT_TRUE(saved().apps.empty());
}

TEST_F(AppManagerTest, StartFileStartsEveryAppAndRemembersTheFile) {
  write_apps({{"web", 1}, {"worker", 2}});
  const json::object report = result("apply", apply_args("start"));
  EXPECT_EQ(strings(report.at("started")), (Names{"web", "worker"}));
  EXPECT_EQ(launched_args(), (Names{"1", "2"}));
  const SavedState state = saved();
  ASSERT_EQ(state.sources.size(), 1u);
  EXPECT_EQ(state.sources[0].path, file_);
  EXPECT_EQ(state.sources[0].env, env_);
  ASSERT_EQ(state.apps.size(), 2u);
  EXPECT_EQ(state.apps[0].source, file_);
}

TEST_F(AppManagerTest, ReloadRestartsAChangedAppAndDeletesARemovedOne) {
  write_apps({{"same", 1}, {"changed", 2}, {"removed", 3}});
  result("apply", apply_args("start"));
  const auto removed_child = launcher_.children[2];

  write_apps({{"same", 1}, {"changed", 20}, {"new", 4}});
  const json::object report = result("apply", apply_args("reload"));
  EXPECT_EQ(strings(report.at("unchanged")), (Names{"same"}));
  EXPECT_EQ(strings(report.at("restarted")), (Names{"changed"}));
  EXPECT_EQ(strings(report.at("changes").at("changed")), (Names{"cmd"}));
  EXPECT_EQ(strings(report.at("deleted")), (Names{"removed"}));
  EXPECT_EQ(strings(report.at("started")), (Names{"new"}));
  EXPECT_TRUE(report.at("failed").as_array().empty());

  EXPECT_EQ(launched_args(), (Names{"1", "2", "3", "4", "20"}));
  EXPECT_TRUE(removed_child->exited);
  EXPECT_EQ(listed(), (Names{"1:same:starting", "2:changed:starting", "4:new:starting"}));
  const json::object info = result("info", {{"target", "changed"}}).at("app").as_object();
  EXPECT_EQ(info.at("restarts").as_int64(), 1) << "the reload's restart counts";
}

TEST_F(AppManagerTest, ReloadDryRunAnswersThePlanAndChangesNothing) {
  write_apps({{"same", 1}, {"changed", 2}, {"removed", 3}});
  result("apply", apply_args("start"));
  const std::string before = test::read_file(paths_.state);

  write_apps({{"same", 1}, {"changed", 20}, {"new", 4}});
  const json::object report = result("apply", apply_args("reload", /*dry_run=*/true));
  EXPECT_EQ(strings(report.at("unchanged")), (Names{"same"}));
  EXPECT_EQ(strings(report.at("restarted")), (Names{"changed"}));
  EXPECT_EQ(strings(report.at("changes").at("changed")), (Names{"cmd"}));
  EXPECT_EQ(strings(report.at("deleted")), (Names{"removed"}));
  EXPECT_EQ(strings(report.at("started")), (Names{"new"}));

  EXPECT_EQ(launcher_.requests.size(), 3u);
  EXPECT_EQ(listed(), (Names{"1:same:starting", "2:changed:starting", "3:removed:starting"}));
  EXPECT_EQ(test::read_file(paths_.state), before);
}

TEST_F(AppManagerTest, AFileThatCannotBeAppliedChangesNothing) {
  start(spec_of("web", {"/bin/sleep", "9"}));
  write_apps({{"other", 1}, {"web", 1}});
  EXPECT_EQ(error("apply", apply_args("start")),
            "exists: an app named \"web\" already exists (id 1) with another spec; delete it or "
            "rename the app in " +
                file_);
  EXPECT_EQ(launcher_.requests.size(), 1u);
  EXPECT_TRUE(saved().sources.empty());

  json::object only = apply_args("start");
  only["only"] = json::array{"nope"};
  EXPECT_EQ(error("apply", only), "not_found: no app named \"nope\" in " + file_);
}

TEST_F(AppManagerTest, SighupReloadsTheRememberedFileWithItsFirstEnvironment) {
  write_apps({{"web", 1}});
  result("apply", apply_args("start"));
  write_apps({{"web", 5}});
  manager().reload_sources();
  ASSERT_TRUE(run_until(io_, [&] { return launcher_.requests.size() == 2; }));
  EXPECT_EQ(launched_args(), (Names{"1", "5"}));
  EXPECT_EQ(launcher_.requests[1].env, env_);
  ASSERT_TRUE(run_until(
      io_, [&] { return log_text_.str().find("reloaded " + file_) != std::string::npos; }));
}

TEST_F(AppManagerTest, AReloadedFileWithAnErrorIsLoggedAndChangesNothing) {
  write_apps({{"web", 1}});
  result("apply", apply_args("start"));
  write_file(file_, "[[app]]\nname = \"web\"\ncmd = 3\n");
  manager().reload_sources();
  settle();
  EXPECT_NE(log_text_.str().find(file_ + " SIGHUP, but has errors; nothing changed"),
            std::string::npos)
      << log_text_.str();
  EXPECT_EQ(launcher_.requests.size(), 1u);
}

TEST_F(AppManagerTest, EventsFollowTheirAppsUntilTheSessionCloses) {
  start(spec_of("web"));
  start(spec_of("worker"));
  auto follower = send("events", {{"targets", json::array{"worker"}}});
  result("restart", {{"targets", json::array{"all"}}});
  std::vector<std::string> seen;
  for (const auto& item : follower->items()) {
    seen.push_back(text(item, "app") + ":" + text(item.at("event").as_object(), "type"));
  }
  ASSERT_FALSE(seen.empty());
  for (const auto& s : seen) EXPECT_EQ(s.rfind("worker:", 0), 0u) << s;

  follower->close();
  const std::size_t before = follower->sent.size();
  result("stop", {{"targets", json::array{"worker"}}});
  EXPECT_EQ(follower->sent.size(), before);
}

TEST_F(AppManagerTest, ShutdownStopsEveryAppButKeepsThemWantedUp) {
  start(spec_of("web"));
  start(spec_of("worker"));
  bool done = false;
  manager().shutdown([&] { done = true; });
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  EXPECT_TRUE(launcher_.children[0]->exited);
  EXPECT_TRUE(launcher_.children[1]->exited);
  for (const SavedApp& app : saved().apps) EXPECT_TRUE(app.wanted_up) << app.spec.name;

  // The next daemon starts them again.
  manager_.reset();
  manager().restore();
  EXPECT_EQ(launcher_.requests.size(), 4u);
}

TEST_F(AppManagerTest, TheWantedStateIsReportedAndSavedAcrossShutdownAndRestore) {
  start(spec_of("web"));
  AppSpec batch = spec_of("batch");
  batch.autostart = false;
  start(batch);
  bool done = false;
  manager().shutdown([&] { done = true; });
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  auto info = [&](const std::string& target) {
    return result("info", {{"target", target}}).at("app").as_object();
  };
  EXPECT_EQ(text(info("web"), "status"), "stopped");
  EXPECT_EQ(text(info("web"), "wanted"), "up") << "a shutdown keeps it wanted up";
  EXPECT_EQ(text(info("batch"), "wanted"), "down");
  const SavedState state = saved();
  ASSERT_EQ(state.apps.size(), 2u);
  EXPECT_TRUE(state.apps[0].wanted_up);
  EXPECT_FALSE(state.apps[1].wanted_up);

  manager_.reset();
  manager().restore();
  EXPECT_EQ(launcher_.requests.size(), 2u) << "only web is started again";
  EXPECT_EQ(text(info("web"), "wanted"), "up");
  EXPECT_EQ(text(info("batch"), "status"), "stopped");
  EXPECT_EQ(text(info("batch"), "wanted"), "down");
  EXPECT_EQ(listed(), (Names{"1:web:starting", "2:batch:stopped"}));
}

}  // namespace
}  // namespace sempre
