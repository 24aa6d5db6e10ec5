// The reload planner on plain values: what `start FILE` and `reload FILE`
// would do to the daemon's apps, with no Monitor and no process.
#include "reload_planner.hpp"

#include <gtest/gtest.h>

namespace sempre {
namespace {

const std::string kFile = "/srv/apps.toml";

AppSpec spec_of(const std::string& name, std::vector<std::string> argv = {"sleep", "100"}) {
  AppSpec spec;
  spec.name = name;
  spec.monitor.argv = std::move(argv);
  return spec;
}

AppSpec stopped(AppSpec spec) {
  spec.autostart = false;
  return spec;
}

CurrentApp current(std::uint64_t id, AppSpec spec, std::string source = kFile, bool up = true) {
  return CurrentApp{id, std::move(spec), std::move(source), up};
}

ReloadPlan start(const std::vector<CurrentApp>& apps, std::vector<AppSpec> specs,
                 const std::vector<std::string>& only = {}) {
  return plan_reload(kFile, apps, std::move(specs), ApplyMode::kStart, only);
}

ReloadPlan reload(const std::vector<CurrentApp>& apps, std::vector<AppSpec> specs,
                  const std::vector<std::string>& only = {}) {
  return plan_reload(kFile, apps, std::move(specs), ApplyMode::kReload, only);
}

// "name:action" for each app of the plan, in its order.
std::vector<std::string> actions(const ReloadPlan& plan) {
  std::vector<std::string> out;
  for (const PlannedApp& p : plan.apps) {
    const char* action = "";
    switch (p.action) {
      case PlannedAction::kStart:
        action = "start";
        break;
      case PlannedAction::kAddStopped:
        action = "add-stopped";
        break;
      case PlannedAction::kStartAgain:
        action = "start-again";
        break;
      case PlannedAction::kRestart:
        action = "restart";
        break;
      case PlannedAction::kUnchanged:
        action = "unchanged";
        break;
    }
    out.push_back(p.spec.name + ":" + action);
  }
  return out;
}

std::vector<std::string> deleted(const ReloadPlan& plan) {
  std::vector<std::string> out;
  for (const PlannedDelete& d : plan.deletes) out.push_back(d.name + "#" + std::to_string(d.id));
  return out;
}

using Names = std::vector<std::string>;

TEST(ReloadPlanner, NewAppsStartInTheFilesOrder) {
  const ReloadPlan plan = start({}, {spec_of("web"), spec_of("worker")});
  ASSERT_FALSE(plan.error);
  EXPECT_EQ(actions(plan), (Names{"web:start", "worker:start"}));
  EXPECT_EQ(plan.apps[0].id, 0u);
  EXPECT_EQ(plan.apps[0].spec, spec_of("web"));
  EXPECT_TRUE(plan.deletes.empty());
}

TEST(ReloadPlanner, ANewAppWithoutAutostartIsAddedStoppedInItsPlace) {
  const ReloadPlan plan = start({}, {stopped(spec_of("batch")), spec_of("web")});
  EXPECT_EQ(actions(plan), (Names{"batch:add-stopped", "web:start"}));
}

TEST(ReloadPlanner, AnAppThereWithTheSameSpecIsUnchanged) {
  const ReloadPlan plan = start({current(3, spec_of("web"))}, {spec_of("web")});
  EXPECT_EQ(actions(plan), (Names{"web:unchanged"}));
  EXPECT_EQ(plan.apps[0].id, 3u);
  EXPECT_FALSE(plan.apps[0].adopt);
}

TEST(ReloadPlanner, StartStartsAgainAStoppedAppWithTheSameSpec) {
  const ReloadPlan plan =
      start({current(3, spec_of("web"), kFile, /*up=*/false)}, {spec_of("web")});
  EXPECT_EQ(actions(plan), (Names{"web:start-again"}));
  EXPECT_EQ(plan.apps[0].id, 3u);
}

TEST(ReloadPlanner, StartLeavesAStoppedAppWithoutAutostartStopped) {
  const ReloadPlan plan =
      start({current(3, stopped(spec_of("web")), kFile, /*up=*/false)}, {stopped(spec_of("web"))});
  EXPECT_EQ(actions(plan), (Names{"web:unchanged"}));
}

TEST(ReloadPlanner, ReloadNeverStartsAStoppedAppThatDidNotChange) {
  const ReloadPlan plan =
      reload({current(3, spec_of("web"), kFile, /*up=*/false)}, {spec_of("web")});
  EXPECT_EQ(actions(plan), (Names{"web:unchanged"}));
}

TEST(ReloadPlanner, AnAppOfTheCommandLineWithTheFilesSpecJoinsTheFile) {
  const ReloadPlan plan = start({current(2, spec_of("web"), /*source=*/"")}, {spec_of("web")});
  EXPECT_EQ(actions(plan), (Names{"web:unchanged"}));
  EXPECT_TRUE(plan.apps[0].adopt);

  const ReloadPlan again =
      start({current(2, spec_of("web"), /*source=*/"", /*up=*/false)}, {spec_of("web")});
  EXPECT_EQ(actions(again), (Names{"web:start-again"}));
  EXPECT_TRUE(again.apps[0].adopt);
}

TEST(ReloadPlanner, AnAppOfAnotherFileWithTheSameSpecIsUnchangedAndKeepsItsFile) {
  const ReloadPlan plan = reload({current(2, spec_of("web"), "/other.toml")}, {spec_of("web")});
  EXPECT_EQ(actions(plan), (Names{"web:unchanged"}));
  EXPECT_FALSE(plan.apps[0].adopt);
}

TEST(ReloadPlanner, ReloadRestartsAChangedAppSayingWhatChanged) {
  AppSpec changed = spec_of("web", {"sleep", "200"});
  changed.monitor.env = {"PORT=81"};
  AppSpec before = spec_of("web");
  before.monitor.env = {"PORT=80"};
  const ReloadPlan plan = reload({current(4, before)}, {changed});
  ASSERT_FALSE(plan.error);
  EXPECT_EQ(actions(plan), (Names{"web:restart"}));
  EXPECT_EQ(plan.apps[0].id, 4u);
  EXPECT_EQ(plan.apps[0].spec, changed);
  EXPECT_EQ(plan.apps[0].changes, (Names{"cmd", "env.PORT"}));
}

TEST(ReloadPlanner, ReloadDeletesTheAppsOfTheFileNoLongerInItInIdOrder) {
  const ReloadPlan plan =
      reload({current(1, spec_of("old")), current(2, spec_of("web")), current(5, spec_of("older"))},
             {spec_of("web")});
  EXPECT_EQ(actions(plan), (Names{"web:unchanged"}));
  EXPECT_EQ(deleted(plan), (Names{"old#1", "older#5"}));
}

TEST(ReloadPlanner, ReloadLeavesTheAppsOfOtherFilesAndOfTheCommandLineAlone) {
  const ReloadPlan plan =
      reload({current(1, spec_of("cli"), ""), current(2, spec_of("theirs"), "/other.toml")}, {});
  EXPECT_TRUE(plan.apps.empty());
  EXPECT_TRUE(plan.deletes.empty());
}

TEST(ReloadPlanner, StartDeletesNothing) {
  const ReloadPlan plan = start({current(1, spec_of("old"))}, {spec_of("web")});
  EXPECT_EQ(actions(plan), (Names{"web:start"}));
  EXPECT_TRUE(plan.deletes.empty());
}

TEST(ReloadPlanner, EveryKindOfChangeInOnePlan) {
  const ReloadPlan plan = reload(
      {current(1, spec_of("same")), current(2, spec_of("changed")), current(3, spec_of("gone"))},
      {spec_of("new"), spec_of("changed", {"sleep", "1"}), stopped(spec_of("quiet")),
       spec_of("same")});
  ASSERT_FALSE(plan.error);
  EXPECT_EQ(actions(plan),
            (Names{"new:start", "changed:restart", "quiet:add-stopped", "same:unchanged"}));
  EXPECT_EQ(deleted(plan), (Names{"gone#3"}));
}

TEST(ReloadPlanner, OnlyPlansTheNamedApps) {
  const ReloadPlan plan =
      start({}, {spec_of("web"), spec_of("worker"), spec_of("cron")}, {"cron", "web"});
  EXPECT_EQ(actions(plan), (Names{"web:start", "cron:start"}));
}

// Guards today's behaviour: reload with `only` (which the CLI never sends)
// counts the file's other apps as gone.
TEST(ReloadPlanner, ReloadWithOnlyCountsTheFilesOtherAppsAsGone) {
  const ReloadPlan plan = reload({current(1, spec_of("web")), current(2, spec_of("worker"))},
                                 {spec_of("web"), spec_of("worker")}, {"web"});
  EXPECT_EQ(actions(plan), (Names{"web:unchanged"}));
  EXPECT_EQ(deleted(plan), (Names{"worker#2"}));
}

TEST(ReloadPlanner, AnUnknownOnlyNameIsAnErrorBeforeAnyOther) {
  AppSpec bad = spec_of("all");
  const ReloadPlan plan = start({}, {bad, spec_of("web")}, {"web", "nope"});
  ASSERT_TRUE(plan.error);
  EXPECT_EQ(plan.error->kind, PlanError::Kind::kUnknownOnly);
  EXPECT_EQ(plan.error->message, "no app named \"nope\" in /srv/apps.toml");
  EXPECT_TRUE(plan.apps.empty());
}

TEST(ReloadPlanner, AnInvalidNameRefusesTheWholeFile) {
  for (const std::string name : {"", "all", "a/b", "..", "42"}) {
    const ReloadPlan plan = start({}, {spec_of("web"), spec_of(name)});
    ASSERT_TRUE(plan.error) << name;
    EXPECT_EQ(plan.error->kind, PlanError::Kind::kInvalidApp) << name;
    EXPECT_EQ(plan.error->message.rfind("/srv/apps.toml: ", 0), 0u) << plan.error->message;
    EXPECT_TRUE(plan.apps.empty());
  }
  const ReloadPlan plan = start({}, {spec_of("42")});
  EXPECT_EQ(plan.error->message,
            "/srv/apps.toml: invalid app name \"42\": a number would read as an id or a pid");
}

TEST(ReloadPlanner, ASpecThatDoesNotValidateRefusesTheWholeFile) {
  AppSpec bad = spec_of("worker");
  bad.monitor.kill_timeout = Millis{0};
  const ReloadPlan plan = reload({current(1, spec_of("gone"))}, {spec_of("web"), bad});
  ASSERT_TRUE(plan.error);
  EXPECT_EQ(plan.error->kind, PlanError::Kind::kInvalidApp);
  EXPECT_EQ(plan.error->message, "/srv/apps.toml: app \"worker\": kill-timeout must be positive");
  EXPECT_TRUE(plan.apps.empty());
  EXPECT_TRUE(plan.deletes.empty());
}

TEST(ReloadPlanner, StartRefusesAnAppOfTheFileWithAnotherSpecAndPointsAtReload) {
  const ReloadPlan plan = start({current(7, spec_of("web"))}, {spec_of("web", {"sleep", "1"})});
  ASSERT_TRUE(plan.error);
  EXPECT_EQ(plan.error->kind, PlanError::Kind::kNameTaken);
  EXPECT_EQ(plan.error->message,
            "an app named \"web\" already exists (id 7) with another spec; use sempre reload "
            "/srv/apps.toml");
}

TEST(ReloadPlanner, NeitherModeChangesAnAppOfTheCommandLineOrAnotherFile) {
  for (const ApplyMode mode : {ApplyMode::kStart, ApplyMode::kReload}) {
    for (const std::string source : {"", "/other.toml"}) {
      const ReloadPlan plan = plan_reload(kFile, {current(7, spec_of("web"), source)},
                                          {spec_of("web", {"sleep", "1"})}, mode, {});
      ASSERT_TRUE(plan.error);
      EXPECT_EQ(plan.error->kind, PlanError::Kind::kNameTaken);
      EXPECT_EQ(plan.error->message,
                "an app named \"web\" already exists (id 7) with another spec; delete it or "
                "rename the app in /srv/apps.toml");
    }
  }
}

TEST(ReloadPlanner, ProblemsAreReportedInTheFilesOrder) {
  AppSpec bad = spec_of("worker");
  bad.monitor.argv.clear();
  const ReloadPlan plan =
      reload({current(7, spec_of("web"), "")}, {bad, spec_of("web", {"sleep", "1"})});
  ASSERT_TRUE(plan.error);
  EXPECT_EQ(plan.error->kind, PlanError::Kind::kInvalidApp);
  EXPECT_EQ(plan.error->message, "/srv/apps.toml: app \"worker\": no program to run");
}

// A config file cannot name an app twice; a request built by hand could,
// and must not make two apps of one name.
TEST(ReloadPlanner, ANameGivenTwiceRefusesTheWholeFile) {
  const ReloadPlan plan = start({}, {spec_of("web"), spec_of("worker"), spec_of("web")});
  ASSERT_TRUE(plan.error);
  EXPECT_EQ(plan.error->kind, PlanError::Kind::kInvalidApp);
  EXPECT_EQ(plan.error->message, "/srv/apps.toml: duplicate app name \"web\"");
}

TEST(ReloadPlanner, AnAppNotInOnlyIsNotChecked) {
  AppSpec bad = spec_of("worker");
  bad.monitor.argv.clear();
  const ReloadPlan plan = start({}, {bad, spec_of("web")}, {"web"});
  ASSERT_FALSE(plan.error);
  EXPECT_EQ(actions(plan), (Names{"web:start"}));
}

}  // namespace
}  // namespace sempre
