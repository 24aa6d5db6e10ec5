#include "state_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <set>
#include <string_view>
#include <utility>

#include "home.hpp"
#include "json_fields.hpp"
#include "option_schema.hpp"
#include "os.hpp"

namespace sempre {
namespace {

namespace json = boost::json;

// Reads all of `fd`. Returns 0 or the errno of the failed read.
int read_all(int fd, std::string& out) {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// --- the spec, as state.json has held it since version 1 ------------------
// The hand-written keys, then each row of the option schema under its JSON
// name. The golden tests pin every name and value, so that no change to the
// schema or the protocol changes what a daemon reads back after an upgrade
// unseen. A new field is read as optional, so that older files stay
// readable; renaming or removing one needs a new kStateVersion.

json::object spec_to_disk(const AppSpec& spec) {
  const MonitorOptions& m = spec.monitor;
  json::object json;
  json["name"] = spec.name;
  json["cmd"] = json_strings(m.argv);
  json["cwd"] = m.cwd;
  json["env"] = json_strings(m.env);
  json["out"] = m.logs.out_path;
  json["err"] = m.logs.err_path;
  json["watch"] = json_strings(m.watch);
  for (const OptionRow& row : option_rows()) put_json(row, spec, json);
  return json;
}

// Every field optional but "name" and "cmd"; a problem reads "spec.KEY: ...".
Result<AppSpec> spec_from_disk(const json::object& json) {
  AppSpec spec;
  MonitorOptions& m = spec.monitor;
  FieldReader read(json, "spec.", ErrorKind::kMalformed);
  read.required("name");
  read.required("cmd");
  read.string("name", spec.name);
  read.strings("cmd", m.argv);
  read.string("cwd", m.cwd);
  read.strings("env", m.env);
  read.string("out", m.logs.out_path);
  read.string("err", m.logs.err_path);
  read.strings("watch", m.watch);
  if (auto st = read.status(); !st) return st.error();
  for (const OptionRow& row : option_rows()) {
    if (auto st = get_json(row, json, spec); !st) {
      return Error{ErrorKind::kMalformed, st.error().message};
    }
  }
  return spec;
}

// --- apps and sources -------------------------------------------------------

json::object to_json(const SavedApp& app) {
  json::object json;
  json["id"] = app.id;
  json["wanted_up"] = app.wanted_up;
  if (app.pid) {
    json["pid"] = *app.pid;
  } else {
    json["pid"] = nullptr;
  }
  if (app.pid_start_time) {
    json["pid_start_time"] = *app.pid_start_time;
  } else {
    json["pid_start_time"] = nullptr;
  }
  if (!app.source.empty()) json["source"] = app.source;
  if (app.restarts != 0) json["restarts"] = app.restarts;
  if (app.out_dropped != 0) json["out_dropped_bytes"] = app.out_dropped;
  if (app.err_dropped != 0) json["err_dropped_bytes"] = app.err_dropped;
  json["spec"] = spec_to_disk(app.spec);
  return json;
}

json::object to_json(const SavedSource& source) {
  json::array env;
  for (const auto& e : source.env) env.emplace_back(e);
  return {{"path", source.path}, {"env", std::move(env)}, {"watch", source.watch}};
}

// Why `value` (at `where`: "sources[1]") is not a source, or empty when
// `source` was filled.
std::string parse_source(const json::value& value, const std::string& where, SavedSource& source) {
  if (!value.is_object()) return where + ": expected an object";
  const json::object& o = value.get_object();
  const json::value* path = o.if_contains("path");
  if (path == nullptr || !path->is_string()) return where + ".path: expected a string";
  source.path = std::string(path->get_string());
  if (const json::value* env = o.if_contains("env")) {
    if (!env->is_array()) return where + ".env: expected an array of strings";
    for (const json::value& e : env->get_array()) {
      if (!e.is_string()) return where + ".env: expected an array of strings";
      source.env.emplace_back(e.get_string());
    }
  }
  if (const json::value* watch = o.if_contains("watch")) {
    if (!watch->is_bool()) return where + ".watch: expected true or false";
    source.watch = watch->get_bool();
  }
  return "";
}

std::optional<std::uint64_t> as_uint64(const json::value& value) {
  if (value.is_uint64()) return value.get_uint64();
  if (value.is_int64() && value.get_int64() >= 0)
    return static_cast<std::uint64_t>(value.get_int64());
  return std::nullopt;
}

// Why the app entry `item` (at `where`: "apps[2]") cannot be restored, or
// empty when `app` was filled.
std::string parse_app(const json::value& item, const std::string& where, SavedApp& app) {
  if (!item.is_object()) return where + ": expected an object";
  const json::object& object = item.get_object();

  const json::value* id = object.if_contains("id");
  const auto id_value = id ? as_uint64(*id) : std::nullopt;
  if (!id_value) return where + ".id: expected a non-negative integer";
  app.id = *id_value;

  const json::value* wanted = object.if_contains("wanted_up");
  if (wanted == nullptr || !wanted->is_bool()) return where + ".wanted_up: expected true or false";
  app.wanted_up = wanted->get_bool();

  if (const json::value* pid = object.if_contains("pid"); pid && !pid->is_null()) {
    if (!pid->is_int64() || pid->get_int64() <= 0 ||
        pid->get_int64() > std::numeric_limits<pid_t>::max()) {
      return where + ".pid: expected a process id or null";
    }
    app.pid = static_cast<pid_t>(pid->get_int64());
  }
  if (const json::value* start = object.if_contains("pid_start_time"); start && !start->is_null()) {
    const auto ticks = as_uint64(*start);
    if (!ticks) return where + ".pid_start_time: expected a non-negative integer or null";
    app.pid_start_time = *ticks;
  }

  if (const json::value* source = object.if_contains("source")) {
    if (!source->is_string()) return where + ".source: expected a string";
    app.source = std::string(source->get_string());
  }
  if (const json::value* restarts = object.if_contains("restarts")) {
    if (!restarts->is_int64() || restarts->get_int64() < 0 ||
        restarts->get_int64() > std::numeric_limits<int>::max()) {
      return where + ".restarts: expected a count";
    }
    app.restarts = static_cast<int>(restarts->get_int64());
  }
  for (auto [key, count] : {std::pair{"out_dropped_bytes", &app.out_dropped},
                            std::pair{"err_dropped_bytes", &app.err_dropped}}) {
    const json::value* v = object.if_contains(key);
    if (v == nullptr) continue;
    if (v->is_uint64()) {
      *count = v->get_uint64();
    } else if (v->is_int64() && v->get_int64() >= 0) {
      *count = static_cast<std::uint64_t>(v->get_int64());
    } else {
      return where + "." + key + ": expected a count";
    }
  }

  const json::value* spec = object.if_contains("spec");
  if (spec == nullptr || !spec->is_object()) return where + ".spec: expected an object";
  auto parsed = spec_from_disk(spec->get_object());
  if (!parsed) return where + "." + parsed.error().message;
  app.spec = std::move(*parsed);
  return "";
}

// How a person knows the app of a bad entry: "app "web" (id 3)", as much of
// it as can be read, or "an app".
std::string name_of_entry(const json::value& item) {
  const json::object* object = item.if_object();
  std::optional<std::uint64_t> id;
  std::string name;
  if (object != nullptr) {
    if (const json::value* v = object->if_contains("id")) id = as_uint64(*v);
    if (const json::value* spec = object->if_contains("spec"); spec && spec->is_object()) {
      if (const json::value* v = spec->get_object().if_contains("name"); v && v->is_string()) {
        name = std::string(v->get_string());
      }
    }
  }
  if (!name.empty() && id) return "app \"" + name + "\" (id " + std::to_string(*id) + ")";
  if (!name.empty()) return "app \"" + name + "\"";
  if (id) return "app id " + std::to_string(*id);
  return "an app";
}

// Reads `text` into `state`. Returns why the whole file cannot be used, or
// empty; an entry that cannot be used is left out and said in `skipped`.
std::string parse_state(std::string_view text, SavedState& state,
                        std::vector<std::string>& skipped) {
  boost::system::error_code ec;
  const json::value root = json::parse(text, ec);
  if (ec) return "invalid JSON: " + ec.message();
  if (!root.is_object()) return "not a JSON object";
  const json::object& top = root.get_object();

  const json::value* version = top.if_contains("version");
  if (version == nullptr) return "no version";
  if (!version->is_int64() || version->get_int64() != kStateVersion) {
    return "unknown version " + json::serialize(*version) + " (this daemon reads version " +
           std::to_string(kStateVersion) + ")";
  }

  const json::value* next_id = top.if_contains("next_id");
  const auto next = next_id ? as_uint64(*next_id) : std::nullopt;
  if (!next || *next == 0) return "next_id: expected a positive integer";
  state.next_id = *next;

  const json::value* apps = top.if_contains("apps");
  if (apps == nullptr || !apps->is_array()) return "apps: expected an array";
  const json::value* sources = top.if_contains("sources");
  if (sources != nullptr && !sources->is_array()) return "sources: expected an array";

  std::set<std::uint64_t> ids;
  std::set<std::string> names;
  for (std::size_t i = 0; i < apps->get_array().size(); ++i) {
    const json::value& item = apps->get_array()[i];
    const std::string where = "apps[" + std::to_string(i) + "]";
    SavedApp app;
    std::string why = parse_app(item, where, app);
    if (why.empty() && ids.count(app.id) != 0) {
      why = where + ".id: duplicate id " + std::to_string(app.id);
    }
    if (why.empty() && names.count(app.spec.name) != 0) {
      why = where + ".spec.name: duplicate name \"" + app.spec.name + "\"";
    }
    // Even an app left out keeps its id from being handed out again.
    if (const json::object* object = item.if_object()) {
      if (const json::value* id = object->if_contains("id")) {
        if (const auto n = as_uint64(*id);
            n && *n >= state.next_id && *n < std::numeric_limits<std::uint64_t>::max()) {
          state.next_id = *n + 1;
        }
      }
    }
    if (!why.empty()) {
      skipped.push_back(name_of_entry(item) + " was not restored (" + why + ")");
      continue;
    }
    ids.insert(app.id);
    names.insert(app.spec.name);
    state.apps.push_back(std::move(app));
  }

  for (std::size_t i = 0; sources != nullptr && i < sources->get_array().size(); ++i) {
    SavedSource source;
    const std::string where = "sources[" + std::to_string(i) + "]";
    const std::string why = parse_source(sources->get_array()[i], where, source);
    if (!why.empty()) {
      skipped.push_back("a config file to reload was not restored (" + why + ")");
      continue;
    }
    state.sources.push_back(std::move(source));
  }
  return "";
}

// A name beside `path` that nothing has: PATH.bad-<unix time>, with a
// counter when that name is taken.
std::string unused_bad_name(const std::string& path) {
  const std::string base = path + ".bad-" + std::to_string(std::time(nullptr));
  std::string target = base;
  for (int n = 1;; ++n) {
    struct stat st;
    if (::lstat(target.c_str(), &st) != 0) return target;
    target = base + "-" + std::to_string(n);
  }
}

// Renames the unusable file at `path` out of the way, to unused_bad_name().
Result<std::string> set_aside(const std::string& path) {
  const std::string target = unused_bad_name(path);
  if (::rename(path.c_str(), target.c_str()) != 0) {
    const int err = errno;
    return os_error(err, "cannot move unusable " + path + " to " + target);
  }
  return target;
}

// The file was of no use: it is set aside, so that the daemon's next save
// does not replace it. Fails when it cannot be.
Result<LoadedState> unusable(const std::string& path, const std::string& problem) {
  auto moved = set_aside(path);
  if (!moved) {
    return Error{moved.error().kind,
                 problem + "; no app was restored from it, and " + moved.error().message,
                 moved.error().os_error};
  }
  LoadedState loaded;
  loaded.warnings.push_back(problem + " and was set aside as " + *moved +
                            "; no app was restored from it");
  return loaded;
}

}  // namespace

Status save_state(const std::string& path, const SavedState& state) {
  json::array apps;
  apps.reserve(state.apps.size());
  for (const SavedApp& app : state.apps) apps.emplace_back(to_json(app));
  json::object root;
  root["version"] = kStateVersion;
  root["next_id"] = state.next_id;
  root["apps"] = std::move(apps);
  if (!state.sources.empty()) {
    json::array sources;
    for (const SavedSource& source : state.sources) sources.emplace_back(to_json(source));
    root["sources"] = std::move(sources);
  }
  std::string text = json::serialize(root);
  text += '\n';

  return write_private_file(path, text);
}

Result<LoadedState> load_state(const std::string& path) {
  LoadedState loaded;
  // O_NONBLOCK: a FIFO in its place must not hang the daemon's start.
  os::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT) return loaded;
    return unusable(path, path + " cannot be read (" + std::strerror(err) + ")");
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    return unusable(path, path + " cannot be read (" + std::strerror(err) + ")");
  }
  if (S_ISDIR(st.st_mode)) {
    // Never moved: a directory there is someone's doing, and saving fails
    // loudly (in the log) rather than anything in it being touched.
    loaded.warnings.push_back(path +
                              " is a directory, not a file: no app was restored from it, and "
                              "no change is saved until it is moved away");
    return loaded;
  }
  if (!S_ISREG(st.st_mode)) return unusable(path, path + " is not a regular file");
  std::string text;
  if (int err = read_all(fd.get(), text); err != 0) {
    return unusable(path, path + " cannot be read (" + std::strerror(err) + ")");
  }
  fd.reset();

  std::vector<std::string> skipped;
  const std::string reason = parse_state(text, loaded.state, skipped);
  if (!reason.empty()) return unusable(path, path + " was damaged (" + reason + ")");
  if (skipped.empty()) return loaded;

  // The daemon's next save leaves out what was skipped: the file as it was
  // is kept beside it, for whoever wants those entries back.
  const std::string copy = unused_bad_name(path);
  std::string kept = "; " + path + " as it was is kept as " + copy;
  if (auto st_copy = write_private_file(copy, text); !st_copy) {
    kept = "; no copy of " + path + " could be kept: " + st_copy.error().message;
  }
  for (const std::string& entry : skipped) loaded.warnings.push_back(path + ": " + entry + kept);
  return loaded;
}

std::optional<std::uint64_t> process_start_time(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  auto stat = os::read_proc_stat(pid);
  // 0: a stat line too short to hold the start time.
  if (!stat || stat->starttime == 0) return std::nullopt;
  return stat->starttime;
}

}  // namespace sempre
