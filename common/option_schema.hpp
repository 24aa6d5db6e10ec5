// The option schema: every start option of an app that is a plain value is
// one row of one table, and that row alone drives its command-line flag, its
// key in apps.toml and [defaults], its field in the JSON codec (the wire and
// state.json), its line in `sempre info`, its line in `sempre save` and the
// documentation check. Adding such an option is one row here plus its effect
// (a field of MonitorOptions and the code that uses it).
//
// Keys whose shape is truly special are written by hand where they are used,
// and are not rows: name, cmd, cwd, env (and env_file, env_inherit), out, err
// and log, watch.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "app_spec.hpp"
#include "sempre/result.hpp"

namespace sempre {

// How a value is written and checked. Each kind has one C++ type (the field
// it points at) and one spelling in every representation:
//   kind       field                    text (CLI)    TOML                  JSON
//   kText      std::string              as typed      string                string
//   kPath      std::string              made absolute string, absolute      string
//   kFlag      bool                     a flag        boolean               bool
//   kCount     int | optional<int>      "3", >= 0     integer >= 0          int | null
//   kInteger   optional<int> |          "-5", in      integer in            int | null
//              optional<uint64_t>       [min, max]    [min, max]
//   kDuration  Millis                   "5s", "250"   "5s" or integer ms    integer ms (KEY_ms)
//   kSize      uint64_t                 "10M"         "10M" or integer      integer
//   kSignal    int                      "TERM", "15"  "TERM" or integer     "TERM" (or a number)
//   kOctal     optional<mode_t>         "022"         "022" or 0o022        int 0..0777 | null
//   kRestart   RestartMode              "on-failure"  string                string
//   kList      vector<string>           repeatable    string or [strings]   [strings]
enum class OptionKind {
  kText,
  kPath,
  kFlag,
  kCount,
  kInteger,
  kDuration,
  kSize,
  kSignal,
  kOctal,
  kRestart,
  kList,
};

// Where a row's value lives in an AppSpec.
template <class T>
using FieldRef = T& (*)(AppSpec&);
using OptionField =
    std::variant<FieldRef<std::string>, FieldRef<bool>, FieldRef<int>, FieldRef<std::optional<int>>,
                 FieldRef<std::optional<std::uint64_t>>, FieldRef<Millis>, FieldRef<std::uint64_t>,
                 FieldRef<std::optional<mode_t>>, FieldRef<RestartMode>,
                 FieldRef<std::vector<std::string>>>;

struct OptionRow {
  std::string_view key;      // in apps.toml; in JSON too (a kDuration's is KEY_ms)
  std::string_view flags;    // CLI11 names: "-m,--max-restarts"; "" = no flag
  std::string_view metavar;  // "DUR"
  std::string_view help;     // --help text
  std::string_view label;    // in `sempre info`; "" = not shown
  OptionKind kind;
  OptionField field;
  // kInteger: the accepted range.
  std::int64_t min = 0;
  std::int64_t max = 0;
  // kDuration: must be longer than 0.
  bool positive = false;
  // kFlag: the flag sets false (--no-autostart), else true.
  bool negated = false;
  // The flag exists on `sempre start` only, not on `sempre run`.
  bool start_only = false;
  // `sempre save` leaves the key out while it holds its default.
  bool save_if_changed = false;
  // `sempre info` shows this when the value is empty, unset or 0; "" leaves
  // the line out then.
  std::string_view none;
};

// Every row, in the order --help, `sempre info` and `sempre save` list them.
std::span<const OptionRow> option_rows();
// The row of file key `key`, or null.
const OptionRow* find_option(std::string_view key);
// The row's long flag without its dashes ("max-restarts"), "" when it has none.
std::string_view long_flag(const OptionRow& row);
// The JSON field name: the key, with "_ms" after a duration's.
std::string json_key(const OptionRow& row);

// Sets the row's field from its command-line text (for kList: one item,
// appended; for kFlag: the text is ignored and the flag's value set). Paths
// resolve against `base`. Errors say what is wrong with the value, without
// naming the option ("invalid duration \"5x\": ...").
Status set_from_text(const OptionRow& row, std::string_view text, AppSpec& spec,
                     const std::string& base);
// Checks what the value's kind requires of the value as a whole (a positive
// duration, an integer's range); errors as set_from_text.
Status check_value(const OptionRow& row, const AppSpec& spec);

// The row's field, in the JSON object, under json_key(row).
void put_json(const OptionRow& row, const AppSpec& spec, boost::json::object& json);
// Sets the row's field from `json` when it holds json_key(row). A value of
// the wrong shape is an error naming the field: "spec.umask: expected ...".
Status get_json(const OptionRow& row, const boost::json::object& json, AppSpec& spec);

// The value as `sempre info` shows it, or nullopt to leave the line out.
std::optional<std::string> display_value(const OptionRow& row, const AppSpec& spec);
// A kCount or kInteger row's value; nullopt when its optional is unset.
std::optional<std::int64_t> integer_value(const OptionRow& row, const AppSpec& spec);
// Whether the value is empty, unset (optional) or, for kSize, 0.
bool is_none(const OptionRow& row, const AppSpec& spec);
// Copies the row's field from `from` into `to`.
void copy_value(const OptionRow& row, const AppSpec& from, AppSpec& to);
// Whether the row's field is the same in both.
bool same_value(const OptionRow& row, const AppSpec& a, const AppSpec& b);

// Reads the field of row `row` as `T`. REQUIRES: the row's field is a T.
template <class T>
const T& field_of(const OptionRow& row, const AppSpec& spec) {
  return std::get<FieldRef<T>>(row.field)(const_cast<AppSpec&>(spec));
}
template <class T>
T& field_of(const OptionRow& row, AppSpec& spec) {
  return std::get<FieldRef<T>>(row.field)(spec);
}

}  // namespace sempre
