#include "option_schema.hpp"

#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <utility>

#include "json_fields.hpp"

namespace sempre {
namespace {

namespace json = boost::json;

template <auto Member>
auto& monitor_field(AppSpec& spec) {
  return spec.monitor.*Member;
}
template <auto Member>
auto& log_field(AppSpec& spec) {
  return spec.monitor.logs.*Member;
}
template <auto Member>
auto& spec_field(AppSpec& spec) {
  return spec.*Member;
}

// The table. Its order is the order of --help, `sempre info` and `sempre save`.
const OptionRow kRows[] = {
    {.key = "interpreter",
     .flags = "-c,--interpreter",
     .metavar = "CMD",
     .help = "Run the program with this interpreter (e.g. node, \"python3 -u\")",
     .label = "interpreter",
     .kind = OptionKind::kText,
     .field = &monitor_field<&MonitorOptions::interpreter>},
    {.key = "user",
     .flags = "--user",
     .metavar = "USER",
     .help = "Run as this user (name or uid; needs root)",
     .label = "user",
     .kind = OptionKind::kText,
     .field = &monitor_field<&MonitorOptions::user>},
    {.key = "group",
     .flags = "--group",
     .metavar = "GROUP",
     .help = "Run with this group (name or gid; needs root)",
     .label = "group",
     .kind = OptionKind::kText,
     .field = &monitor_field<&MonitorOptions::group>},
    {.key = "umask",
     .flags = "--umask",
     .metavar = "MODE",
     .help = "File mode creation mask of the child, in octal (e.g. 027)",
     .label = "umask",
     .kind = OptionKind::kOctal,
     .field = &monitor_field<&MonitorOptions::umask>},
    {.key = "nice",
     .flags = "--nice",
     .metavar = "N",
     .help = "Scheduling niceness of the child, -20 (first) to 19 (last); below the current "
             "one needs privilege",
     .label = "nice",
     .kind = OptionKind::kInteger,
     .field = &monitor_field<&MonitorOptions::nice>,
     .min = -20,
     .max = 19},
    {.key = "limit_nofile",
     .flags = "--limit-nofile",
     .metavar = "N",
     .help = "Most files the child may have open (RLIMIT_NOFILE); above the hard limit "
             "needs privilege",
     .label = "open files limit",
     .kind = OptionKind::kInteger,
     .field = &monitor_field<&MonitorOptions::limit_nofile>,
     .min = 1,
     .max = std::numeric_limits<std::int64_t>::max()},
    {.key = "restart",
     .flags = "--restart",
     .metavar = "WHEN",
     .help = "When to restart: always, on-failure or never (default always)",
     .label = "restart",
     .kind = OptionKind::kRestart,
     .field = &monitor_field<&MonitorOptions::restart>},
    {.key = "max_restarts",
     .flags = "-m,--max-restarts",
     .metavar = "N",
     .help = "Give up (status failed) after N consecutive crash-loop restarts (default: unlimited)",
     .label = "max restarts",
     .kind = OptionKind::kCount,
     .field = &monitor_field<&MonitorOptions::max_restarts>,
     .none = "unlimited"},
    {.key = "min_uptime",
     .flags = "--min-uptime",
     .metavar = "DUR",
     .help = "A run shorter than this is a crash loop (default 1s)",
     .label = "min uptime",
     .kind = OptionKind::kDuration,
     .field = &monitor_field<&MonitorOptions::min_uptime>},
    {.key = "restart_delay",
     .flags = "--restart-delay",
     .metavar = "DUR",
     .help = "Wait before restarting a run that lasted (default 0)",
     .label = "restart delay",
     .kind = OptionKind::kDuration,
     .field = &monitor_field<&MonitorOptions::restart_delay>},
    {.key = "backoff_max",
     .flags = "--backoff-max",
     .metavar = "DUR",
     .help = "Longest wait between crash-loop restarts (default 30s)",
     .label = "backoff max",
     .kind = OptionKind::kDuration,
     .field = &monitor_field<&MonitorOptions::backoff_max>,
     .positive = true},
    {.key = "kill_signal",
     .flags = "--kill-signal",
     .metavar = "SIG",
     .help = "Signal that asks the app to stop (default TERM)",
     .label = "kill signal",
     .kind = OptionKind::kSignal,
     .field = &monitor_field<&MonitorOptions::kill_signal>},
    {.key = "kill_timeout",
     .flags = "--kill-timeout",
     .metavar = "DUR",
     .help = "Wait this long after the kill signal, then SIGKILL (default 5s)",
     .label = "kill timeout",
     .kind = OptionKind::kDuration,
     .field = &monitor_field<&MonitorOptions::kill_timeout>,
     .positive = true},
    {.key = "append",
     .flags = "-a,--append",
     .help = "Append to the log files instead of truncating them",
     .label = "log append",
     .kind = OptionKind::kFlag,
     .field = &log_field<&LogOptions::append>},
    {.key = "log_max_size",
     .flags = "--log-max-size",
     .metavar = "SIZE",
     .help = "Rotate a log file when it would pass SIZE (default 10M; 0: never)",
     .label = "log max size",
     .kind = OptionKind::kSize,
     .field = &log_field<&LogOptions::max_size>,
     .none = "never rotate"},
    {.key = "log_keep",
     .flags = "--log-keep",
     .metavar = "N",
     .help = "Rotated log files to keep (default 5)",
     .label = "log keep",
     .kind = OptionKind::kCount,
     .field = &log_field<&LogOptions::keep>},
    {.key = "log_timestamps",
     .flags = "--log-timestamps",
     .help = "Prefix each log line with its time (ISO 8601, milliseconds)",
     .label = "log timestamps",
     .kind = OptionKind::kFlag,
     .field = &log_field<&LogOptions::timestamps>},
    {.key = "watch_ignore",
     .flags = "--watch-ignore",
     .metavar = "GLOB",
     .help = "Ignore changes to paths matching GLOB (repeatable)",
     .label = "watch ignore",
     .kind = OptionKind::kList,
     .field = &monitor_field<&MonitorOptions::watch_ignore>},
    {.key = "watch_debounce",
     .flags = "--watch-debounce",
     .metavar = "DUR",
     .help = "Wait until files have been quiet this long before restarting (default 200ms)",
     .kind = OptionKind::kDuration,
     .field = &monitor_field<&MonitorOptions::watch_debounce>,
     .save_if_changed = true},
    {.key = "pid_file",
     .flags = "--pid-file",
     .metavar = "FILE",
     .help = "Write the child's pid to FILE while it runs",
     .label = "pid file",
     .kind = OptionKind::kPath,
     .field = &monitor_field<&MonitorOptions::pid_file>},
    {.key = "ready",
     .flags = "--ready",
     .metavar = "CHECK",
     .help = "When the app is up: notify (it sends READY=1 to $NOTIFY_SOCKET), tcp:PORT "
             "(127.0.0.1:PORT accepts) or exec:CMD (sh -c CMD exits 0); default: once it "
             "has lasted --min-uptime",
     .label = "ready when",
     .kind = OptionKind::kText,
     .field = &monitor_field<&MonitorOptions::ready>,
     .none = "up for min uptime"},
    {.key = "autostart",
     .flags = "--no-autostart",
     .help = "Add the app stopped; sempre restart starts it",
     .kind = OptionKind::kFlag,
     .field = &spec_field<&AppSpec::autostart>,
     .negated = true,
     .start_only = true,
     .save_if_changed = true},
};

Error bad(std::string message) { return Error{ErrorKind::kInvalidArgument, std::move(message)}; }

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

// A whole decimal integer, or nullopt.
std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t n = 0;
  const char* end = text.data() + text.size();
  const auto [at, ec] = std::from_chars(text.data(), end, n);
  if (text.empty() || ec != std::errc() || at != end) return std::nullopt;
  return n;
}

std::string range_text(const OptionRow& row) {
  return "must be from " + std::to_string(row.min) + " to " + std::to_string(row.max);
}

// Stores an integer already checked against the row's bounds.
void store_integer(const OptionRow& row, std::int64_t n, AppSpec& spec) {
  if (const auto* f = std::get_if<FieldRef<std::optional<int>>>(&row.field)) {
    (*f)(spec) = static_cast<int>(n);
  } else if (const auto* u = std::get_if<FieldRef<std::optional<std::uint64_t>>>(&row.field)) {
    (*u)(spec) = static_cast<std::uint64_t>(n);
  } else {
    std::get<FieldRef<int>>(row.field)(spec) = static_cast<int>(n);
  }
}

Result<mode_t> parse_octal(std::string_view text) {
  unsigned mask = 0;
  const char* end = text.data() + text.size();
  const auto [at, ec] = std::from_chars(text.data(), end, mask, 8);
  if (text.empty() || ec != std::errc() || at != end || mask > 0777) {
    return bad("expected an octal mode such as \"022\", got " + in_quotes(text));
  }
  return static_cast<mode_t>(mask);
}

std::string octal_text(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%03o", static_cast<unsigned>(mode));
  return buf;
}

}  // namespace

std::optional<std::int64_t> integer_value(const OptionRow& row, const AppSpec& spec) {
  if (const auto* f = std::get_if<FieldRef<std::optional<int>>>(&row.field)) {
    const auto& v = (*f)(const_cast<AppSpec&>(spec));
    if (v) return *v;
    return std::nullopt;
  }
  if (const auto* u = std::get_if<FieldRef<std::optional<std::uint64_t>>>(&row.field)) {
    const auto& v = (*u)(const_cast<AppSpec&>(spec));
    if (v) return static_cast<std::int64_t>(*v);
    return std::nullopt;
  }
  return std::get<FieldRef<int>>(row.field)(const_cast<AppSpec&>(spec));
}

std::span<const OptionRow> option_rows() { return kRows; }

const OptionRow* find_option(std::string_view key) {
  for (const OptionRow& row : kRows) {
    if (row.key == key) return &row;
  }
  return nullptr;
}

std::string_view long_flag(const OptionRow& row) {
  const auto at = row.flags.find("--");
  if (at == std::string_view::npos) return {};
  return row.flags.substr(at + 2);
}

std::string json_key(const OptionRow& row) {
  std::string key(row.key);
  if (row.kind == OptionKind::kDuration) key += "_ms";
  return key;
}

Status set_from_text(const OptionRow& row, std::string_view text, AppSpec& spec,
                     const std::string& base) {
  switch (row.kind) {
    case OptionKind::kText:
      field_of<std::string>(row, spec) = std::string(text);
      return {};
    case OptionKind::kPath: {
      std::filesystem::path p(text);
      if (!text.empty() && p.is_relative()) p = std::filesystem::path(base) / p;
      field_of<std::string>(row, spec) =
          text.empty() ? std::string() : p.lexically_normal().string();
      return {};
    }
    case OptionKind::kFlag:
      field_of<bool>(row, spec) = !row.negated;
      return {};
    case OptionKind::kCount:
    case OptionKind::kInteger: {
      const auto n = parse_integer(text);
      if (!n) return bad(in_quotes(text) + " is not a number");
      if (row.kind == OptionKind::kCount && *n < 0) return bad("must be 0 or more");
      if (row.kind == OptionKind::kCount && *n > std::numeric_limits<int>::max()) {
        return bad("too large");
      }
      if (row.kind == OptionKind::kInteger && (*n < row.min || *n > row.max)) {
        return bad(range_text(row));
      }
      store_integer(row, *n, spec);
      return {};
    }
    case OptionKind::kDuration: {
      auto d = parse_duration(text);
      if (!d) return d.error();
      field_of<Millis>(row, spec) = *d;
      return {};
    }
    case OptionKind::kSize: {
      auto size = parse_size(text);
      if (!size) return size.error();
      field_of<std::uint64_t>(row, spec) = *size;
      return {};
    }
    case OptionKind::kSignal: {
      auto sig = parse_signal(text);
      if (!sig) return sig.error();
      field_of<int>(row, spec) = *sig;
      return {};
    }
    case OptionKind::kOctal: {
      auto mode = parse_octal(text);
      if (!mode) return mode.error();
      field_of<std::optional<mode_t>>(row, spec) = *mode;
      return {};
    }
    case OptionKind::kRestart: {
      auto mode = parse_restart_mode(text);
      if (!mode) return mode.error();
      field_of<RestartMode>(row, spec) = *mode;
      return {};
    }
    case OptionKind::kList:
      if (text.empty()) return bad("must not be empty");
      field_of<std::vector<std::string>>(row, spec).emplace_back(text);
      return {};
  }
  return {};
}

Status check_value(const OptionRow& row, const AppSpec& spec) {
  if (row.kind == OptionKind::kDuration && row.positive &&
      field_of<Millis>(row, spec).count() <= 0) {
    return bad("must be longer than 0");
  }
  if (row.kind == OptionKind::kInteger) {
    const auto n = integer_value(row, spec);
    if (n && (*n < row.min || *n > row.max)) return bad(range_text(row));
  }
  return {};
}

void put_json(const OptionRow& row, const AppSpec& spec, json::object& out) {
  json::value& v = out[json_key(row)];
  switch (row.kind) {
    case OptionKind::kText:
    case OptionKind::kPath:
      v = field_of<std::string>(row, spec);
      return;
    case OptionKind::kFlag:
      v = field_of<bool>(row, spec);
      return;
    case OptionKind::kCount:
    case OptionKind::kInteger:
      if (const auto n = integer_value(row, spec)) {
        v = *n;
      } else {
        v = nullptr;
      }
      return;
    case OptionKind::kDuration:
      v = field_of<Millis>(row, spec).count();
      return;
    case OptionKind::kSize:
      v = field_of<std::uint64_t>(row, spec);
      return;
    case OptionKind::kSignal:
      v = signal_name(field_of<int>(row, spec));
      return;
    case OptionKind::kOctal:
      if (const auto& mode = field_of<std::optional<mode_t>>(row, spec)) {
        v = static_cast<std::uint64_t>(*mode);
      } else {
        v = nullptr;
      }
      return;
    case OptionKind::kRestart:
      v = restart_mode_name(field_of<RestartMode>(row, spec));
      return;
    case OptionKind::kList:
      v = json_strings(field_of<std::vector<std::string>>(row, spec));
      return;
  }
}

Status get_json(const OptionRow& row, const json::object& object, AppSpec& spec) {
  const std::string key = json_key(row);
  const json::value* v = object.if_contains(key);
  if (v == nullptr) return {};
  auto fail = [&key](std::string_view problem) {
    return bad("spec." + key + ": " + std::string(problem));
  };
  switch (row.kind) {
    case OptionKind::kText:
    case OptionKind::kPath:
      if (!v->is_string()) return fail("expected a string");
      field_of<std::string>(row, spec) = std::string(v->get_string());
      return {};
    case OptionKind::kFlag:
      if (!v->is_bool()) return fail("expected true or false");
      field_of<bool>(row, spec) = v->get_bool();
      return {};
    case OptionKind::kCount:
    case OptionKind::kInteger: {
      const bool optional = !std::holds_alternative<FieldRef<int>>(row.field);
      if (v->is_null() && optional) {
        if (const auto* f = std::get_if<FieldRef<std::optional<int>>>(&row.field)) {
          (*f)(spec).reset();
        } else {
          std::get<FieldRef<std::optional<std::uint64_t>>>(row.field)(spec).reset();
        }
        return {};
      }
      if (row.kind == OptionKind::kCount) {
        const auto n =
            json_integer<int>(*v, std::numeric_limits<int>::min(), std::numeric_limits<int>::max());
        if (!n) return fail("expected an integer");
        store_integer(row, *n, spec);
        return {};
      }
      const auto n = json_integer<std::int64_t>(*v, row.min, row.max);
      if (!n) {
        return fail("expected an integer from " + std::to_string(row.min) + " to " +
                    std::to_string(row.max));
      }
      store_integer(row, *n, spec);
      return {};
    }
    case OptionKind::kDuration: {
      const auto n = json_integer<Millis::rep>(*v, std::numeric_limits<Millis::rep>::min(),
                                               std::numeric_limits<Millis::rep>::max());
      if (!n) return fail("expected an integer");
      field_of<Millis>(row, spec) = Millis{*n};
      return {};
    }
    case OptionKind::kSize: {
      const auto n = json_integer<std::uint64_t>(*v, 0, std::numeric_limits<std::uint64_t>::max());
      if (!n) return fail("expected a non-negative integer");
      field_of<std::uint64_t>(row, spec) = *n;
      return {};
    }
    case OptionKind::kSignal: {
      std::string text;
      if (v->is_string()) {
        text = std::string(v->get_string());
      } else if (const auto n = json_integer<int>(*v, 1, std::numeric_limits<int>::max())) {
        text = std::to_string(*n);
      } else {
        return fail("expected a signal name or number");
      }
      auto sig = parse_signal(text);
      if (!sig) return fail(sig.error().message);
      field_of<int>(row, spec) = *sig;
      return {};
    }
    case OptionKind::kOctal: {
      auto& mode = field_of<std::optional<mode_t>>(row, spec);
      if (v->is_null()) {
        mode.reset();
        return {};
      }
      const auto n = json_integer<std::uint32_t>(*v, 0, 0777);
      if (!n) return fail("expected an integer from 0 to 511");
      mode = static_cast<mode_t>(*n);
      return {};
    }
    case OptionKind::kRestart: {
      if (!v->is_string()) return fail("expected always, on-failure or never");
      auto mode = parse_restart_mode(v->get_string());
      if (!mode) return fail(mode.error().message);
      field_of<RestartMode>(row, spec) = *mode;
      return {};
    }
    case OptionKind::kList: {
      if (!v->is_array()) return fail("expected an array of strings");
      std::vector<std::string> items;
      items.reserve(v->get_array().size());
      for (const json::value& item : v->get_array()) {
        if (!item.is_string()) return fail("expected an array of strings");
        items.emplace_back(item.get_string());
      }
      field_of<std::vector<std::string>>(row, spec) = std::move(items);
      return {};
    }
  }
  return {};
}

bool is_none(const OptionRow& row, const AppSpec& spec) {
  switch (row.kind) {
    case OptionKind::kText:
    case OptionKind::kPath:
      return field_of<std::string>(row, spec).empty();
    case OptionKind::kCount:
    case OptionKind::kInteger:
      return !integer_value(row, spec).has_value();
    case OptionKind::kSize:
      return field_of<std::uint64_t>(row, spec) == 0;
    case OptionKind::kOctal:
      return !field_of<std::optional<mode_t>>(row, spec).has_value();
    case OptionKind::kList:
      return field_of<std::vector<std::string>>(row, spec).empty();
    case OptionKind::kFlag:
    case OptionKind::kDuration:
    case OptionKind::kSignal:
    case OptionKind::kRestart:
      return false;
  }
  return false;
}

std::optional<std::string> display_value(const OptionRow& row, const AppSpec& spec) {
  if (row.label.empty()) return std::nullopt;
  if (is_none(row, spec)) {
    if (row.none.empty()) return std::nullopt;
    return std::string(row.none);
  }
  switch (row.kind) {
    case OptionKind::kText:
    case OptionKind::kPath:
      return field_of<std::string>(row, spec);
    case OptionKind::kFlag:
      return field_of<bool>(row, spec) ? "yes" : "no";
    case OptionKind::kCount:
    case OptionKind::kInteger:
      return std::to_string(*integer_value(row, spec));
    case OptionKind::kDuration:
      return format_duration(field_of<Millis>(row, spec));
    case OptionKind::kSize:
      return format_size(field_of<std::uint64_t>(row, spec));
    case OptionKind::kSignal:
      return signal_name(field_of<int>(row, spec));
    case OptionKind::kOctal:
      return octal_text(*field_of<std::optional<mode_t>>(row, spec));
    case OptionKind::kRestart:
      return restart_mode_name(field_of<RestartMode>(row, spec));
    case OptionKind::kList: {
      std::string out;
      for (const auto& item : field_of<std::vector<std::string>>(row, spec)) {
        out += (out.empty() ? "" : ", ") + item;
      }
      return out;
    }
  }
  return std::nullopt;
}

void copy_value(const OptionRow& row, const AppSpec& from, AppSpec& to) {
  std::visit([&](auto ref) { ref(to) = ref(const_cast<AppSpec&>(from)); }, row.field);
}

bool same_value(const OptionRow& row, const AppSpec& a, const AppSpec& b) {
  return std::visit(
      [&](auto ref) { return ref(const_cast<AppSpec&>(a)) == ref(const_cast<AppSpec&>(b)); },
      row.field);
}

}  // namespace sempre
