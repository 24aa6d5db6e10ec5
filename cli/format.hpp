// What `sempre` prints for people: the app table of `list`, the report of
// `info`, event and log lines, the daemon's status. Pure functions of the
// daemon's JSON (protocol.hpp) and of whether colour is on, which the caller
// decides once with colour_enabled().
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app_spec.hpp"

namespace sempre::cli {

// Whether output may be coloured: only on a terminal, and never when
// NO_COLOR is set, whatever its value (https://no-color.org).
// `no_color` is getenv("NO_COLOR").
bool colour_wanted(bool is_terminal, const char* no_color);
// colour_wanted() for descriptor `fd` and this process's environment.
bool colour_enabled(int fd);

// --- reading the daemon's JSON --------------------------------------------
// Lenient: a field that is missing or of another type reads as empty.

std::string field_string(const boost::json::object& object, std::string_view key);
std::optional<std::int64_t> field_int(const boost::json::object& object, std::string_view key);
double field_double(const boost::json::object& object, std::string_view key);

// --- tables ---------------------------------------------------------------

struct Column {
  std::string title;
  bool right_aligned = false;  // numbers
};

struct Cell {
  std::string text;
  std::string_view style = {};  // an SGR sequence (kGreen...), used when colour is on
};

inline constexpr std::string_view kBold = "\033[1m";
inline constexpr std::string_view kDim = "\033[2m";
inline constexpr std::string_view kRed = "\033[31m";
inline constexpr std::string_view kGreen = "\033[32m";
inline constexpr std::string_view kYellow = "\033[33m";
inline constexpr std::string_view kReset = "\033[0m";

// A header line and one line per row; each column as wide as its widest
// cell (in characters, not bytes), columns two spaces apart, no trailing
// blanks. With colour the header is bold and cells wear their style; the
// alignment is the same either way.
std::string render_table(const std::vector<Column>& columns,
                         const std::vector<std::vector<Cell>>& rows, bool colour);

// --- commands -------------------------------------------------------------

// The style of a lifecycle state: green running; yellow starting, backoff,
// stopping; red failed, exited; dim stopped.
std::string_view status_style(std::string_view status);

// `sempre list`: ID NAME PID STATUS UPTIME RESTARTS CPU MEM, one row per
// AppInfo; "-" where no child runs. "no apps" when there are none.
std::string format_list(const boost::json::array& apps, bool colour);

// "api (id 1)", or "api (id 1, pid 1234)" with `with_pid` and a child running.
std::string app_label(const boost::json::object& app, bool with_pid);

// `sempre info`: the state (observed and wanted), the last exit, the
// command, the log paths, then the spec and the child's environment when
// `spec` is known.
std::string format_info(const boost::json::object& app, const std::optional<AppSpec>& spec,
                        bool colour);

// `sempre events`: "TIME APP TYPE ...", the details in the words of
// describe(Event): "2026-11-26T16:49:27.123Z api exit pid=12 code 1 uptime=20ms".
std::string format_event(std::string_view app, const boost::json::object& event);

// `sempre logs`: `line`, or "APP | line" when `prefixed` (several apps
// shown). With colour the prefix is dim, or red for stderr ("err").
std::string format_log_line(std::string_view app, std::string_view stream, std::string_view line,
                            bool prefixed, bool colour);

// `sempre daemon status`, from the result of a ping.
std::string format_daemon_status(const boost::json::object& ping);

// `cmd` as a shell would read it back: words quoted only when they need it.
std::string shell_join(const std::vector<std::string>& words);

}  // namespace sempre::cli
