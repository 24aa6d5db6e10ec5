#include "option_schema.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <csignal>
#include <limits>
#include <set>
#include <string>

namespace sempre {
namespace {

namespace json = boost::json;

// Whether the row's field has the C++ type its kind promises.
bool kind_matches_field(const OptionRow& row) {
  const OptionField& f = row.field;
  switch (row.kind) {
    case OptionKind::kText:
    case OptionKind::kPath:
      return std::holds_alternative<FieldRef<std::string>>(f);
    case OptionKind::kFlag:
      return std::holds_alternative<FieldRef<bool>>(f);
    case OptionKind::kCount:
      return std::holds_alternative<FieldRef<int>>(f) ||
             std::holds_alternative<FieldRef<std::optional<int>>>(f);
    case OptionKind::kInteger:
      return std::holds_alternative<FieldRef<std::optional<int>>>(f) ||
             std::holds_alternative<FieldRef<std::optional<std::uint64_t>>>(f);
    case OptionKind::kDuration:
      return std::holds_alternative<FieldRef<Millis>>(f);
    case OptionKind::kSize:
      return std::holds_alternative<FieldRef<std::uint64_t>>(f);
    case OptionKind::kSignal:
      return std::holds_alternative<FieldRef<int>>(f);
    case OptionKind::kOctal:
      return std::holds_alternative<FieldRef<std::optional<mode_t>>>(f);
    case OptionKind::kRestart:
      return std::holds_alternative<FieldRef<RestartMode>>(f);
    case OptionKind::kList:
      return std::holds_alternative<FieldRef<std::vector<std::string>>>(f);
  }
  return false;
}

// A value of the row's kind unlike the default, as the command line writes it.
std::string unusual_text(const OptionRow& row) {
  switch (row.kind) {
    case OptionKind::kText:
      return "tcp:9999";
    case OptionKind::kPath:
      return "/srv/x.pid";
    case OptionKind::kFlag:
      return "";
    case OptionKind::kCount:
      return "7";
    case OptionKind::kInteger:
      return std::to_string(row.max > 100 ? 4096 : row.max - 1);
    case OptionKind::kDuration:
      return "3s";
    case OptionKind::kSize:
      return "64K";
    case OptionKind::kSignal:
      return "HUP";
    case OptionKind::kOctal:
      return "027";
    case OptionKind::kRestart:
      return "never";
    case OptionKind::kList:
      return "*.tmp";
  }
  return "";
}

TEST(OptionSchema, EveryRowsFieldHasTheTypeOfItsKind) {
  for (const OptionRow& row : option_rows()) EXPECT_TRUE(kind_matches_field(row)) << row.key;
}

TEST(OptionSchema, KeysAndFlagsAreUniqueAndFlagsSpellTheKey) {
  std::set<std::string_view> keys;
  std::set<std::string_view> flags;
  for (const OptionRow& row : option_rows()) {
    EXPECT_TRUE(keys.insert(row.key).second) << row.key;
    EXPECT_EQ(find_option(row.key), &row);
    EXPECT_FALSE(row.help.empty()) << row.key;
    if (row.flags.empty()) continue;
    EXPECT_TRUE(flags.insert(long_flag(row)).second) << row.flags;
    // --kill-timeout for kill_timeout; a negated flag: --no-autostart.
    std::string expected(row.key);
    std::replace(expected.begin(), expected.end(), '_', '-');
    if (row.negated) expected = "no-" + expected;
    EXPECT_EQ(long_flag(row), expected);
    EXPECT_EQ(row.kind == OptionKind::kFlag, row.metavar.empty()) << row.key;
  }
  EXPECT_EQ(find_option("cmd"), nullptr);
}

TEST(OptionSchema, EveryRowSurvivesTextThenJsonBothWays) {
  for (const OptionRow& row : option_rows()) {
    AppSpec spec;
    ASSERT_TRUE(set_from_text(row, unusual_text(row), spec, "/base").ok()) << row.key;
    EXPECT_FALSE(same_value(row, spec, AppSpec{})) << row.key << ": the value must differ";
    json::object object;
    put_json(row, spec, object);
    ASSERT_TRUE(object.contains(json_key(row))) << row.key;
    AppSpec back;
    ASSERT_TRUE(get_json(row, object, back).ok()) << row.key;
    EXPECT_TRUE(same_value(row, spec, back)) << row.key;
    AppSpec copied;
    copy_value(row, spec, copied);
    EXPECT_TRUE(same_value(row, spec, copied)) << row.key;
  }
}

TEST(OptionSchema, TextIsCheckedByKind) {
  AppSpec spec;
  EXPECT_EQ(set_from_text(*find_option("max_restarts"), "abc", spec, "/").error().message,
            "\"abc\" is not a number");
  EXPECT_EQ(set_from_text(*find_option("log_keep"), "-1", spec, "/").error().message,
            "must be 0 or more");
  EXPECT_EQ(set_from_text(*find_option("nice"), "20", spec, "/").error().message,
            "must be from -20 to 19");
  EXPECT_TRUE(set_from_text(*find_option("nice"), "-20", spec, "/").ok());
  EXPECT_EQ(spec.monitor.nice, -20);
  EXPECT_EQ(set_from_text(*find_option("umask"), "999", spec, "/").error().message,
            "expected an octal mode such as \"022\", got \"999\"");
  EXPECT_FALSE(set_from_text(*find_option("kill_timeout"), "5x", spec, "/").ok());
  EXPECT_FALSE(set_from_text(*find_option("kill_signal"), "NOPE", spec, "/").ok());
  ASSERT_TRUE(set_from_text(*find_option("kill_timeout"), "0", spec, "/").ok());
  EXPECT_EQ(check_value(*find_option("kill_timeout"), spec).error().message,
            "must be longer than 0");
  ASSERT_TRUE(set_from_text(*find_option("pid_file"), "run/app.pid", spec, "/srv").ok());
  EXPECT_EQ(spec.monitor.pid_file, "/srv/run/app.pid");
  ASSERT_TRUE(set_from_text(*find_option("autostart"), "", spec, "/").ok());
  EXPECT_FALSE(spec.autostart);
}

TEST(OptionSchema, JsonOfTheWrongShapeNamesTheField) {
  AppSpec spec;
  auto wrong = [&](std::string_view key, json::value value) {
    json::object object;
    object[json_key(*find_option(key))] = std::move(value);
    auto st = get_json(*find_option(key), object, spec);
    return st.ok() ? std::string() : st.error().message;
  };
  EXPECT_EQ(wrong("nice", 40), "spec.nice: expected an integer from -20 to 19");
  EXPECT_EQ(wrong("limit_nofile", -1),
            "spec.limit_nofile: expected an integer from 1 to " +
                std::to_string(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(wrong("limit_nofile", "many"),
            "spec.limit_nofile: expected an integer from 1 to " +
                std::to_string(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(wrong("kill_timeout", "5s"), "spec.kill_timeout_ms: expected an integer");
  EXPECT_EQ(wrong("append", 1), "spec.append: expected true or false");
  EXPECT_EQ(wrong("nice", nullptr), "");
  EXPECT_FALSE(spec.monitor.nice.has_value());
}

TEST(OptionSchema, InfoShowsEachValueInItsUnitsAndSaysWhatNoneMeans) {
  AppSpec spec;
  EXPECT_EQ(display_value(*find_option("max_restarts"), spec), "unlimited");
  EXPECT_EQ(display_value(*find_option("ready"), spec), "up for min uptime");
  EXPECT_EQ(display_value(*find_option("user"), spec), std::nullopt);
  EXPECT_EQ(display_value(*find_option("nice"), spec), std::nullopt);
  EXPECT_EQ(display_value(*find_option("kill_timeout"), spec), "5s");
  EXPECT_EQ(display_value(*find_option("append"), spec), "no");
  spec.monitor.logs.max_size = 0;
  EXPECT_EQ(display_value(*find_option("log_max_size"), spec), "never rotate");
  spec.monitor.nice = 5;
  spec.monitor.limit_nofile = 256;
  EXPECT_EQ(display_value(*find_option("nice"), spec), "5");
  EXPECT_EQ(display_value(*find_option("limit_nofile"), spec), "256");
  spec.monitor.kill_signal = SIGINT;
  EXPECT_EQ(display_value(*find_option("kill_signal"), spec), "INT");
}

}  // namespace
}  // namespace sempre
