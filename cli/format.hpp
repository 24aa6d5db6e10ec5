// What `sempre` prints for people: the app table of `list`, the report of
// `info`, event and log lines, the daemon's status. Pure functions of the
// daemon's typed replies (protocol.hpp) and of whether colour is on, which
// the caller decides once with colour_enabled().
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app_spec.hpp"
#include "protocol.hpp"
#include "sempre/result.hpp"

namespace sempre::cli {

// Whether output may be coloured: only on a terminal, and never when
// NO_COLOR is set to a non-empty value (https://no-color.org).
// `no_color` is getenv("NO_COLOR").
bool colour_wanted(bool is_terminal, const char* no_color);
// colour_wanted() for descriptor `fd` and this process's environment.
bool colour_enabled(int fd);

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

// `sempre list`: one row per AppInfo, the columns `columns` names (empty:
// default_list_columns(), ID NAME PID STATUS UPTIME RESTARTS CPU MEM); "-"
// where no child runs. "no apps" when there are none. An exited app whose
// code was 0 is not red: it did what it should.
std::string format_list(const std::vector<protocol::AppInfo>& apps, bool colour,
                        const std::vector<std::string>& columns = {});
const std::vector<std::string>& default_list_columns();
// Every column `list -o` knows, in table order.
std::vector<std::string> list_column_names();
// "name,pid,cmd" -> its columns; each is a column name or the JSON field it
// shows (uptime or uptime_ms, mem or rss_bytes). Fails naming an unknown one.
Result<std::vector<std::string>> parse_list_columns(std::string_view text);
// Sorts AppInfos by a column or JSON field ("-cpu": descending), the field
// as `list --json` shows it; apps lacking it (a null pid, no last exit) go
// last. Fails for an unknown field.
Status sort_apps(std::vector<protocol::AppInfo>& apps, std::string_view field);

// "api (id 1)", or "api (id 1, pid 1234)" with `with_pid` and a child running.
std::string app_label(const protocol::AppInfo& app, bool with_pid);

// `sempre info`: the state (observed and wanted), the last exit, the
// command, where the app came from when `source` is known ("": the command
// line), the log paths, then the spec and the child's environment when
// `spec` is known.
std::string format_info(const protocol::AppInfo& app, const std::optional<AppSpec>& spec,
                        bool colour, const std::optional<std::string>& source = std::nullopt);

// `sempre events`: "TIME APP " and describe(event):
// "2026-11-26T16:49:27.123Z api exit pid=12 code 1 uptime=20ms".
std::string format_event(std::string_view app, const Event& event);

// `value` as compact JSON, with numbers written as people read them (0,
// 12.5), where Boost.JSON writes doubles in exponent form (0E0, 1.25E1).
std::string json_text(const boost::json::value& value);

// The terminal columns `text` takes: UTF-8 decoded, East Asian wide
// characters and emoji count 2, combining marks 0.
std::size_t display_width(std::string_view text);

// `sempre logs`: "STREAM | line", or "APP STREAM | line" with `show_app`,
// the name padded to `name_width` columns. STREAM is out, err, or log (one
// file holds both). With colour the prefix is dim, or red for err.
std::string format_log_line(std::string_view app, std::size_t name_width, std::string_view stream,
                            std::string_view line, bool show_app, bool colour);

// The instant of a line written with --log-timestamps
// ("2026-11-26T16:49:27.123+0000 ..."), in ms since the epoch; nullopt
// when the line does not start with one.
std::optional<std::int64_t> log_stamp_ms(std::string_view line);

// One line of a log file, as `sempre logs` received it.
using LogLine = protocol::LogLine;

// The last lines of several files (`sempre logs` without -f), in the order
// received. When every line has a timestamp they are merged into one
// timeline; else each file is printed as a block under "==> PATH <==" (when
// there is more than one), since lines without times cannot be interleaved
// truthfully. Names are padded to the longest.
std::string format_log_tail(const std::vector<LogLine>& lines, bool show_app, bool colour);

// `sempre daemon status`, from the result of a ping.
std::string format_daemon_status(const protocol::PingReply& ping);

// `cmd` as a shell would read it back: words quoted only when they need it.
std::string shell_join(const std::vector<std::string>& words);

}  // namespace sempre::cli
