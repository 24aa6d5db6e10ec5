// Fuzzes the option schema's text parsers: the input is the text of a
// command-line value (`sempre start --kill-timeout TEXT`), given to
// set_from_text() of every row in turn, and so to the parsers of each kind
// (integers, durations, sizes, signals, octal modes, restart modes, paths).
//
// Properties besides "no crash, no leak, no undefined behaviour":
//   - a refusal has a message;
//   - a value the text gives survives the JSON codec (put_json, get_json);
//   - a duration prints (format_duration) as text that parses back to it,
//     and a signal's name names it.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.hpp"
#include "option_schema.hpp"
#include "sempre/units.hpp"

namespace {

using sempre::AppSpec;
using sempre::OptionKind;
using sempre::OptionRow;
using sempre::fuzz::require;

void check_row(const OptionRow& row, std::string_view text) {
  AppSpec spec;
  const sempre::Status set = sempre::set_from_text(row, text, spec, "/srv/app");
  if (!set) {
    require(!set.error().message.empty(), "a refused value says why", row.key);
    return;
  }
  (void)sempre::check_value(row, spec);
  (void)sempre::display_value(row, spec);
  (void)sempre::is_none(row, spec);

  boost::json::object json;
  sempre::put_json(row, spec, json);
  AppSpec back;
  const sempre::Status got = sempre::get_json(row, json, back);
  require(got.ok(), "a value put in JSON gets back", boost::json::serialize(json));
  require(sempre::same_value(row, spec, back), "a value put in JSON gets back the same",
          boost::json::serialize(json));

  if (row.kind == OptionKind::kDuration) {
    const sempre::Millis d = sempre::field_of<sempre::Millis>(row, spec);
    const std::string printed = sempre::format_duration(d);
    const auto parsed = sempre::parse_duration(printed);
    require(parsed.ok() && *parsed == d, "a printed duration parses back to itself", printed);
  }
  if (row.kind == OptionKind::kSignal) {
    const int sig = sempre::field_of<int>(row, spec);
    const std::string name = sempre::signal_name(sig);
    const auto parsed = sempre::parse_signal(name);
    require(parsed.ok() && *parsed == sig, "a signal's name parses back to it", name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const OptionRow& row : sempre::option_rows()) check_row(row, text);
  return 0;
}
