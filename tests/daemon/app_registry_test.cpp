// The registry's rules: ids, names and what a TARGET means. Apps without a
// Monitor have no pid; the pid rules use Monitors on a fake launcher.
#include "app_registry.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "monitor/fake_clock.hpp"
#include "monitor/fake_launcher.hpp"

namespace sempre {
namespace {

using test::FakeClock;
using test::FakeLauncher;

AppSpec spec_of(const std::string& name) {
  AppSpec spec;
  spec.name = name;
  spec.monitor.argv = {"/bin/true"};
  return spec;
}

std::vector<std::uint64_t> ids(const std::vector<App*>& apps) {
  std::vector<std::uint64_t> out;
  for (const App* app : apps) out.push_back(app->id);
  return out;
}

using Ids = std::vector<std::uint64_t>;

class AppRegistryTest : public ::testing::Test {
 protected:
  // Adds `name` with a Monitor on the fake launcher, started: its pid is
  // the launcher's next one.
  App& add_running(const std::string& name) {
    App& app = registry_.add(spec_of(name));
    app.monitor = std::make_unique<Monitor>(io_.get_executor(), app.spec.monitor,
                                            MonitorSeams{&clock_, &launcher_});
    EXPECT_TRUE(app.monitor->start().ok());
    return app;
  }

  Ids resolved(const std::vector<std::string>& targets) {
    auto apps = registry_.resolve(targets);
    EXPECT_TRUE(apps.ok()) << (apps.ok() ? "" : apps.error().message);
    return apps.ok() ? ids(*apps) : Ids{};
  }

  boost::asio::io_context io_;
  FakeClock clock_;
  FakeLauncher launcher_;
  AppRegistry registry_;
};

TEST_F(AppRegistryTest, HandsOutIdsFromOneInOrder) {
  EXPECT_EQ(registry_.next_id(), 1u);
  EXPECT_EQ(registry_.add(spec_of("a")).id, 1u);
  EXPECT_EQ(registry_.add(spec_of("b")).id, 2u);
  EXPECT_EQ(registry_.next_id(), 3u);
  EXPECT_EQ(ids(registry_.all()), (Ids{1, 2}));
  EXPECT_EQ(registry_.size(), 2u);
}

TEST_F(AppRegistryTest, NeverReusesTheIdOfADeletedApp) {
  registry_.add(spec_of("a"));
  registry_.add(spec_of("b"));
  EXPECT_NE(registry_.remove(2), nullptr);
  EXPECT_EQ(registry_.add(spec_of("c")).id, 3u);
  EXPECT_EQ(registry_.remove(2), nullptr);
}

TEST_F(AppRegistryTest, AFailedStartConsumesNoId) {
  registry_.add(spec_of("a"));
  const std::uint64_t id = registry_.add(spec_of("typo")).id;
  auto gone = registry_.withdraw(id);
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(gone->spec.name, "typo");
  EXPECT_EQ(registry_.find_id(id), nullptr);
  EXPECT_EQ(registry_.next_id(), id);
  EXPECT_EQ(registry_.add(spec_of("b")).id, id);
}

TEST_F(AppRegistryTest, AWithdrawnAppThatIsNotTheLatestLeavesItsIdUsed) {
  registry_.add(spec_of("a"));
  registry_.add(spec_of("b"));
  registry_.withdraw(1);
  EXPECT_EQ(registry_.next_id(), 3u);
}

TEST_F(AppRegistryTest, RestoredAppsKeepTheirIdsAndNextIdMovesPastThem) {
  registry_.skip_ids_below(4);
  registry_.add_with_id(9, spec_of("late"));
  registry_.add_with_id(2, spec_of("early"));
  EXPECT_EQ(registry_.next_id(), 10u);
  EXPECT_EQ(ids(registry_.all()), (Ids{2, 9}));
  EXPECT_EQ(registry_.find_id(2)->spec.name, "early");
  EXPECT_EQ(registry_.add(spec_of("new")).id, 10u);
}

TEST_F(AppRegistryTest, SkipIdsBelowNeverMovesBack) {
  registry_.skip_ids_below(7);
  registry_.skip_ids_below(3);
  EXPECT_EQ(registry_.next_id(), 7u);
}

TEST_F(AppRegistryTest, FindsByIdAndByName) {
  registry_.add(spec_of("web"));
  EXPECT_EQ(registry_.find_name("web")->id, 1u);
  EXPECT_EQ(registry_.find_id(1)->spec.name, "web");
  EXPECT_EQ(registry_.find_name("nope"), nullptr);
  EXPECT_EQ(registry_.find_id(2), nullptr);
}

TEST_F(AppRegistryTest, ResolvesNamesAndIdsInIdOrderEachOnce) {
  registry_.add(spec_of("a"));
  registry_.add(spec_of("b"));
  registry_.add(spec_of("c"));
  EXPECT_EQ(resolved({"c", "1", "a", "3"}), (Ids{1, 3}));
  EXPECT_EQ(resolved({"b"}), (Ids{2}));
}

TEST_F(AppRegistryTest, AllIsEveryAppOnceWhateverElseIsNamed) {
  registry_.add(spec_of("a"));
  registry_.add(spec_of("b"));
  EXPECT_EQ(resolved({"b", "all", "a"}), (Ids{1, 2}));
  AppRegistry empty;
  auto none = empty.resolve({"all"});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(AppRegistryTest, AnIdWinsOverAPid) {
  App& a = add_running("a");  // id 1, pid 1000
  launcher_.next_pid = 1;
  App& b = add_running("b");  // id 2, pid 1
  EXPECT_EQ(b.pid(), 1);
  EXPECT_EQ(resolved({"1"}), (Ids{1}));  // id 1, not the app of pid 1
  EXPECT_EQ(resolved({"1000"}), (Ids{a.id}));
  EXPECT_EQ(resolved({"2"}), (Ids{2}));
}

TEST_F(AppRegistryTest, APidTargetsTheRunningAppItBelongsTo) {
  add_running("a");
  App& b = add_running("b");
  EXPECT_EQ(b.pid(), 1001);
  EXPECT_EQ(resolved({"1001"}), (Ids{2}));
}

TEST_F(AppRegistryTest, ZeroNeverMatchesTheZeroPidOfAnAppThatDoesNotRun) {
  registry_.add(spec_of("stopped"));
  EXPECT_EQ(registry_.find_id(1)->pid(), 0);
  auto apps = registry_.resolve({"0"});
  ASSERT_FALSE(apps.ok());
  EXPECT_EQ(apps.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(apps.error().message, "no app matches \"0\"");
}

TEST_F(AppRegistryTest, TheFirstTargetThatMatchesNothingFailsTheWhole) {
  registry_.add(spec_of("a"));
  for (const std::string target : {"nope", "7", "", "99999999999999999999"}) {
    auto apps = registry_.resolve({"a", target, "also-nope"});
    ASSERT_FALSE(apps.ok()) << target;
    EXPECT_EQ(apps.error().message, "no app matches \"" + target + "\"");
  }
}

TEST_F(AppRegistryTest, ANumberTooLongForAnIdIsOnlyAName) {
  // Names may not be numbers, but a restored state could hold anything:
  // a long number is looked up by name only, never parsed.
  registry_.add(spec_of("1234567890123456789"));
  EXPECT_EQ(resolved({"1234567890123456789"}), (Ids{1}));
}

TEST(AppName, RefusesWhatWouldReadAsATargetOrAPath) {
  EXPECT_EQ(check_app_name("web"), "");
  EXPECT_EQ(check_app_name("web-2.api"), "");
  EXPECT_EQ(check_app_name(""), "the app name must not be empty");
  EXPECT_EQ(check_app_name("all"), "\"all\" cannot name an app: it means every app");
  EXPECT_EQ(check_app_name("a/b"), "invalid app name \"a/b\": it must not contain '/'");
  EXPECT_EQ(check_app_name("."), "invalid app name \".\": it must not contain '/'");
  EXPECT_EQ(check_app_name(".."), "invalid app name \"..\": it must not contain '/'");
  EXPECT_EQ(check_app_name("007"),
            "invalid app name \"007\": a number would read as an id or a pid");
}

}  // namespace
}  // namespace sempre
