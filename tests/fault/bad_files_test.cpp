// Fault scenario for a damaged state.json: five saved apps, the daemon
// stopped, the file damaged in one of several ways, then the first `sempre
// list` starts a daemon. Counted exactly: the apps restored and running,
// the warnings said (once, then never), the copies set aside.
#include <iostream>

#include "fault/fault_fixture.hpp"

namespace sempre::fault {
namespace {

struct Damage {
  const char* name;
  int restored;  // of the five apps
};

class BadFiles : public FaultScenario, public ::testing::WithParamInterface<Damage> {
 protected:
  // The state file after damage of the kind `how`.
  static std::string damaged(const std::string& how, const std::string& good) {
    if (how == "Garbage") return std::string("\0\xff{ not json", 12);
    if (how == "Truncated") return good.substr(0, good.size() / 2);
    // OneBadApp: the third app's command is not a list of strings.
    json::value state = json::parse(good);
    json::object& app = state.as_object().at("apps").as_array().at(2).as_object();
    app.at("spec").as_object()["cmd"] = 42;
    return json::serialize(state);
  }

  std::vector<std::string> set_aside() const {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(home_)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with("state.json.bad-")) found.push_back(entry.path().string());
    }
    return found;
  }
};

long count_of(const std::string& text, const std::string& what) {
  long n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

TEST_P(BadFiles, OnlyWhatIsDamagedIsLostAndTheUserIsToldOnce) {
  const Damage damage = GetParam();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(start("app" + std::to_string(i), {kChild, "sleep", "forever"}), 0);
  }
  ASSERT_EQ(sempre({"daemon", "stop"}), 0);
  const std::string state = home_ + "/state.json";
  const std::string how = damage.name;
  std::string bytes;
  if (how == "Directory") {
    fs::remove(state);
    fs::create_directory(state);
  } else {
    bytes = damaged(how, test::read_file(state));
    test::write_file(state, bytes);
  }

  std::string first;
  ASSERT_EQ(sempre({"list"}, &first), 0) << first;
  std::string second;
  ASSERT_EQ(sempre({"list"}, &second), 0) << second;
  const std::map<std::string, json::object> listed = apps();
  int running = 0;
  for (const auto& [name, app] : listed) {
    const pid_t pid = pid_of(app);
    running += pid > 0 && copies(name) == std::vector<pid_t>{pid} ? 1 : 0;
  }
  const long warned = count_of(first, "sempre: warning: ");
  const long warned_again = count_of(second, "sempre: warning: ");
  const std::vector<std::string> kept = set_aside();
  std::cout << how << ": restored " << listed.size() << " of 5, running " << running
            << "; warnings " << warned << " then " << warned_again << "; copies set aside "
            << kept.size() << "\n";
  EXPECT_EQ(static_cast<int>(listed.size()), damage.restored) << first;
  EXPECT_EQ(running, damage.restored);
  EXPECT_EQ(warned, 1) << first;
  EXPECT_EQ(warned_again, 0) << second;
  if (how == "Directory") {
    EXPECT_TRUE(kept.empty());
    EXPECT_TRUE(fs::is_directory(state)) << "a directory is left alone";
    EXPECT_NE(first.find("directory"), std::string::npos) << first;
  } else {
    ASSERT_EQ(kept.size(), 1u);
    EXPECT_EQ(test::read_file(kept.front()), bytes) << "the damaged file is kept as it was";
    EXPECT_NE(first.find(kept.front()), std::string::npos) << "the warning names the copy";
  }
  if (how == "OneBadApp") {
    EXPECT_EQ(listed.count("app2"), 0u);
    EXPECT_NE(first.find("\"app2\""), std::string::npos) << first;
  }
}

INSTANTIATE_TEST_SUITE_P(StateJson, BadFiles,
                         ::testing::Values(Damage{"Garbage", 0}, Damage{"Truncated", 0},
                                           Damage{"OneBadApp", 4}, Damage{"Directory", 0}),
                         [](const ::testing::TestParamInfo<Damage>& param) {
                           return std::string(param.param.name);
                         });

}  // namespace
}  // namespace sempre::fault
