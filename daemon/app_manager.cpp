#include "app_manager.hpp"

#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <map>
#include <span>

#include "app_config.hpp"
#include "protocol.hpp"
#include "sempre/file_watcher.hpp"
#include "sempre/log_files.hpp"
#include "sempre/monitor.hpp"
#include "state_store.hpp"

namespace sempre {
namespace {

namespace json = boost::json;
using protocol::Command;
using protocol::ErrorCode;

// Names double as log file names and must not read as an id, a pid or `all`.
std::string check_name(const std::string& name) {
  if (name.empty()) return "the app name must not be empty";
  if (name == "all") return "\"all\" cannot name an app: it means every app";
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    return "invalid app name \"" + name + "\": it must not contain '/'";
  }
  if (name.find_first_not_of("0123456789") == std::string::npos) {
    return "invalid app name \"" + name + "\": a number would read as an id or a pid";
  }
  return {};
}

// Sends `sig`, then SIGKILL after `timeout`, to the group of `pid`, a
// process left running by an earlier daemon (not our child: watched through
// a pidfd). `done` runs once it is gone.
class StaleChildStopper : public std::enable_shared_from_this<StaleChildStopper> {
 public:
  static void stop(boost::asio::any_io_executor executor, pid_t pid, int sig, Millis timeout,
                   std::function<void()> done) {
    auto self = std::shared_ptr<StaleChildStopper>(
        new StaleChildStopper(executor, pid, std::move(done)));
    self->begin(sig, timeout);
  }

 private:
  StaleChildStopper(boost::asio::any_io_executor executor, pid_t pid, std::function<void()> done)
      : pid_(pid), fd_(executor), timer_(executor), done_(std::move(done)) {}

  void begin(int sig, Millis timeout) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (::kill(-pid_, sig) != 0) ::kill(pid_, sig);
    if (pidfd < 0) {
      finish();
      return;
    }
    boost::system::error_code ec;
    fd_.assign(pidfd, ec);
    if (ec) {
      ::close(pidfd);
      finish();
      return;
    }
    auto self = shared_from_this();
    fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                   [self](const boost::system::error_code&) { self->finish(); });
    timer_.expires_after(timeout);
    timer_.async_wait([self](const boost::system::error_code& error) {
      if (error) return;
      ::kill(-self->pid_, SIGKILL);
      ::kill(self->pid_, SIGKILL);
    });
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    ::kill(-pid_, SIGKILL);  // what is left of its group
    timer_.cancel();
    boost::system::error_code ignored;
    fd_.close(ignored);
    if (done_) done_();
  }

  pid_t pid_;
  boost::asio::posix::stream_descriptor fd_;
  boost::asio::steady_timer timer_;
  std::function<void()> done_;
  bool finished_ = false;
};

// Counts down a set of asynchronous completions and then runs `done` once.
struct Countdown {
  std::size_t left;
  std::function<void()> done;
  void one() {
    if (--left == 0 && done) done();
  }
};

}  // namespace

class AppManager::Impl {
 public:
  Impl(boost::asio::any_io_executor executor, HomePaths paths, std::shared_ptr<spdlog::logger> log)
      : executor_(std::move(executor)),
        paths_(std::move(paths)),
        log_(std::move(log)),
        clock_(make_asio_clock(executor_)),
        started_(std::chrono::steady_clock::now()) {}

  ~Impl() {
    // Monitors kill what still runs; subscribers are only weak references.
    apps_.clear();
  }

  void restore() {
    auto loaded = load_state(paths_.state);
    if (!loaded) {
      log_->error("cannot read {}: {}; starting with no app", paths_.state, loaded.error().message);
      return;
    }
    if (!loaded->warning.empty()) log_->warn("{}", loaded->warning);
    next_id_ = std::max<std::uint64_t>(loaded->state.next_id, 1);
    for (SavedSource& source : loaded->state.sources) {
      remember_source(source.path, std::move(source.env), source.watch);
    }
    for (SavedApp& saved : loaded->state.apps) {
      next_id_ = std::max(next_id_, saved.id + 1);
      App& app = add_app(saved.id, std::move(saved.spec), saved.wanted_up, /*resume=*/true);
      app.source = saved.source;
      app.restarts_before = saved.restarts;
      log_->info("restored app {} (id {}), wanted {}", app.spec.name, app.id,
                 app.wanted_up ? "up" : "down");
      if (!app.wanted_up) continue;
      const std::uint64_t id = app.id;
      auto start = [this, id] {
        App* a = find_id(id);
        if (a == nullptr || !a->wanted_up) return;
        if (auto st = start_app(*a); !st) {
          log_->error("app {} (id {}) cannot start: {}", a->spec.name, id, st.error().message);
        }
      };
      if (saved.pid && saved.pid_start_time && process_start_time(*saved.pid) == saved.pid_start_time) {
        log_->warn("app {} (id {}): pid {} of an earlier daemon still runs; stopping it first",
                   app.spec.name, app.id, *saved.pid);
        StaleChildStopper::stop(executor_, *saved.pid, app.spec.monitor.kill_signal,
                                app.spec.monitor.kill_timeout, start);
      } else {
        start();
      }
    }
    persist();
  }

  // Serves `request` by the command table (routes()): its args decoded into
  // the command's struct (a bad shape is answered bad_request), then its
  // handler.
  void handle(const protocol::Request& request, const std::shared_ptr<Session>& session) {
    const auto command = protocol::parse_command(request.cmd);
    if (!command) {
      return fail(session, request, ErrorCode::kBadRequest,
                  "unknown command \"" + request.cmd + "\"");
    }
    for (const Route& route : routes()) {
      if (route.command == *command) return route.serve(*this, request, session);
    }
    fail(session, request, ErrorCode::kBadRequest, "unknown command \"" + request.cmd + "\"");
  }

  void shutdown(std::function<void()> done) {
    stop_all(/*keep_wanted=*/true, [this, done = std::move(done)](std::size_t) {
      persist();
      if (done) done();
    });
  }

  void set_on_kill(std::function<void()> on_kill) { on_kill_ = std::move(on_kill); }

  void reload_sources() {
    std::vector<std::string> paths;
    for (const auto& [path, source] : sources_) paths.push_back(path);
    for (const auto& path : paths) reload_source(path, "SIGHUP");
  }

  std::vector<pid_t> owned_pids() const {
    std::vector<pid_t> pids;
    for (const auto& [id, app] : apps_) {
      if (const pid_t pid = app->monitor->status().pid; pid != 0) pids.push_back(pid);
    }
    return pids;
  }

 private:
  struct App {
    std::uint64_t id = 0;
    AppSpec spec;
    bool wanted_up = false;
    std::string source;  // the config file it came from; empty: the command line
    std::unique_ptr<Monitor> monitor;
    // Called with each event until they return true (--wait).
    std::vector<std::function<bool(const Event&)>> waiters;
    // Restarts of earlier Monitors of this app (before a reload replaced
    // it, or under an earlier daemon): the count shown adds the current one's.
    int restarts_before = 0;
    // CPU% over a window the daemon owns, the same for every client that
    // asks within it: the last sample and the percentage it gave.
    std::chrono::steady_clock::time_point cpu_at{};
    std::uint64_t cpu_ms = 0;
    pid_t cpu_pid = 0;
    double cpu_percent = 0;
  };

  // At most one new CPU sample per app within this long.
  static constexpr auto kCpuWindow = std::chrono::seconds(1);

  // A config file the daemon remembers.
  struct Source {
    std::vector<std::string> env;  // of the CLI that started it
    bool watch = false;
    std::unique_ptr<FileWatcher> watcher;
  };

  // A client following logs or events.
  struct Subscriber {
    std::uint64_t key;
    std::weak_ptr<Session> session;
    std::uint64_t request_id;
    std::vector<std::uint64_t> app_ids;  // empty: every app, those started later too
    bool out = true;                     // logs: which streams
    bool err = true;
  };

  // --- apps -------------------------------------------------------------

  // `resume`: the app ran under an earlier daemon, so its next run appends
  // to the logs of the runs before rather than truncating them.
  App& add_app(std::uint64_t id, AppSpec spec, bool wanted_up, bool resume) {
    auto app = std::make_unique<App>();
    app->id = id;
    app->spec = std::move(spec);
    app->wanted_up = wanted_up;
    App* raw = app.get();
    make_monitor(*raw, resume);
    apps_[id] = std::move(app);
    return *raw;
  }

  void make_monitor(App& app, bool resume) {
    MonitorOptions options = app.spec.monitor;
    if (resume) options.logs.append = true;
    app.monitor = std::make_unique<Monitor>(executor_, options);
    App* raw = &app;
    app.monitor->on_event([this, raw](const Event& e) { on_app_event(*raw, e); });
    app.monitor->on_output([this, raw](OutputStream stream, std::string_view line) {
      on_app_output(*raw, stream, line);
    });
  }

  // Each stream goes to SEMPRE_HOME/logs/NAME.out.log or .err.log unless
  // given its own file: no stream is thrown away unless the user says so
  // (`--err /dev/null`).
  void fill_log_defaults(AppSpec& spec) const {
    LogOptions& logs = spec.monitor.logs;
    if (logs.out_path.empty()) logs.out_path = paths_.logs_dir + "/" + spec.name + ".out.log";
    if (logs.err_path.empty()) logs.err_path = paths_.logs_dir + "/" + spec.name + ".err.log";
  }

  Status start_app(App& app) {
    app.wanted_up = true;
    return app.monitor->start();
  }

  void erase_app(std::uint64_t id) {
    auto it = apps_.find(id);
    if (it == apps_.end()) return;
    log_->info("deleted app {} (id {})", it->second->spec.name, id);
    // The Monitor may be inside its own callback: destroy it later.
    std::shared_ptr<App> gone(std::move(it->second));
    apps_.erase(it);
    boost::asio::post(executor_, [gone] {});
  }

  App* find_id(std::uint64_t id) {
    auto it = apps_.find(id);
    return it == apps_.end() ? nullptr : it->second.get();
  }

  App* find_name(const std::string& name) {
    for (auto& [id, app] : apps_) {
      if (app->spec.name == name) return app.get();
    }
    return nullptr;
  }

  // Resolves TARGETs (name, id, pid or "all") to apps, in id order, each once.
  Result<std::vector<App*>> resolve(const std::vector<std::string>& targets) {
    std::vector<App*> found;
    auto add = [&found](App* app) {
      if (std::find(found.begin(), found.end(), app) == found.end()) found.push_back(app);
    };
    for (const std::string& target : targets) {
      if (target == "all") {
        for (auto& [id, app] : apps_) add(app.get());
        continue;
      }
      App* match = find_name(target);
      if (match == nullptr && !target.empty() &&
          target.find_first_not_of("0123456789") == std::string::npos && target.size() < 19) {
        const auto number = std::stoull(target);
        match = find_id(number);
        // Else the pid of a running app's main process: an app that does not
        // run has pid 0, which must never match "0".
        for (auto it = apps_.begin(); match == nullptr && number != 0 && it != apps_.end(); ++it) {
          const pid_t pid = it->second->monitor->status().pid;
          if (pid > 0 && static_cast<std::uint64_t>(pid) == number) match = it->second.get();
        }
      }
      if (match == nullptr) {
        return Error{ErrorKind::kNotFound, "no app matches \"" + target + "\""};
      }
      add(match);
    }
    std::sort(found.begin(), found.end(), [](App* a, App* b) { return a->id < b->id; });
    return found;
  }

  protocol::AppInfo info_of(App& app) {
    protocol::AppInfo info;
    info.id = app.id;
    info.name = app.spec.name;
    info.status = app.monitor->status();
    info.status.wanted_up = app.wanted_up;
    info.status.restarts += app.restarts_before;
    info.usage = app.monitor->usage();
    const auto now = std::chrono::steady_clock::now();
    if (info.status.pid != app.cpu_pid) {
      // A new run: its first figure is its average since it started.
      app.cpu_pid = info.status.pid;
      app.cpu_at = now;
      app.cpu_ms = info.usage.cpu_ms;
      app.cpu_percent = info.usage.cpu_percent;
    } else if (now - app.cpu_at >= kCpuWindow) {
      const auto elapsed = std::chrono::duration_cast<Millis>(now - app.cpu_at).count();
      const std::uint64_t used = info.usage.cpu_ms >= app.cpu_ms ? info.usage.cpu_ms - app.cpu_ms : 0;
      app.cpu_percent = elapsed > 0 ? 100.0 * static_cast<double>(used) / static_cast<double>(elapsed) : 0;
      app.cpu_at = now;
      app.cpu_ms = info.usage.cpu_ms;
    }
    info.usage.cpu_percent = app.cpu_percent;
    info.cmd = app.spec.monitor.argv;
    info.cwd = app.spec.monitor.cwd;
    return info;
  }

  std::vector<protocol::AppOutcome> infos_of(const std::vector<App*>& apps) {
    std::vector<protocol::AppOutcome> out;
    for (App* app : apps) out.push_back({info_of(*app), {}});
    return out;
  }

  void persist() {
    SavedState state;
    state.next_id = next_id_;
    for (const auto& [id, app] : apps_) {
      SavedApp saved;
      saved.id = id;
      saved.spec = app->spec;
      saved.wanted_up = app->wanted_up;
      if (const pid_t pid = app->monitor->status().pid; pid != 0) {
        saved.pid = pid;
        saved.pid_start_time = process_start_time(pid);
      }
      saved.source = app->source;
      saved.restarts = app->restarts_before + app->monitor->status().restarts;
      state.apps.push_back(std::move(saved));
    }
    for (const auto& [path, source] : sources_) state.sources.push_back({path, source.env, source.watch});
    if (auto st = save_state(paths_.state, state); !st) {
      log_->error("cannot save {}: {}", paths_.state, st.error().message);
    }
  }

  // Stops `apps` (wanted down unless `keep_wanted`), then runs `done` with
  // how many of them had a child to stop, once every one of them is down.
  void stop_apps(const std::vector<App*>& apps, bool keep_wanted,
                 std::function<void(std::size_t)> done) {
    std::size_t running = 0;
    for (App* app : apps) {
      const State state = app->monitor->status().state;
      if (state == State::kStarting || state == State::kRunning || state == State::kStopping ||
          state == State::kBackoff) {
        ++running;
      }
    }
    auto countdown = std::make_shared<Countdown>();
    countdown->left = apps.size() + 1;
    countdown->done = [done = std::move(done), running] { done(running); };
    for (App* app : apps) {
      if (!keep_wanted) app->wanted_up = false;
      app->monitor->stop([countdown] { countdown->one(); });
    }
    countdown->one();
  }

  void stop_all(bool keep_wanted, std::function<void(std::size_t)> done) {
    std::vector<App*> all;
    for (auto& [id, app] : apps_) all.push_back(app.get());
    stop_apps(all, keep_wanted, std::move(done));
  }

  // --- events and output ------------------------------------------------

  void on_app_event(App& app, const Event& e) {
    const std::string line = describe(e);
    if (e.type == EventType::kFailed) {
      log_->error("app {} (id {}): {}", app.spec.name, app.id, line);
    } else {
      log_->info("app {} (id {}): {}", app.spec.name, app.id, line);
    }
    // The pid in state.json must follow every spawn and exit.
    if (e.type == EventType::kStart || e.type == EventType::kExit) persist_soon();
    publish(event_subscribers_, app.id, protocol::to_json(protocol::EventItem{app.spec.name, e}));
    if (!app.waiters.empty()) {
      auto waiters = std::move(app.waiters);
      app.waiters.clear();
      for (auto& waiter : waiters) {
        if (!waiter(e)) app.waiters.push_back(std::move(waiter));
      }
    }
  }

  // --wait: calls `done` once every app of `ids` is running, or has ended
  // (exited, failed, stopped) before it was; the answer holds an "error"
  // for each app that did not come up.
  void wait_until_up(const std::vector<std::uint64_t>& ids,
                     std::function<void(std::map<std::uint64_t, std::string>)> done) {
    auto errors = std::make_shared<std::map<std::uint64_t, std::string>>();
    auto countdown = std::make_shared<Countdown>();
    countdown->left = ids.size() + 1;
    countdown->done = [errors, done = std::move(done)] { done(*errors); };
    for (std::uint64_t id : ids) {
      App* app = find_id(id);
      if (app == nullptr) {
        countdown->one();
        continue;
      }
      const MonitorStatus st = app->monitor->status();
      if (st.state == State::kRunning) {
        countdown->one();
        continue;
      }
      if (st.state != State::kStarting && st.state != State::kBackoff) {
        (*errors)[id] = why_not_up(st, {});
        countdown->one();
        continue;
      }
      app->waiters.push_back([id, errors, countdown](const Event& e) {
        if (e.state == State::kRunning) {
          countdown->one();
          return true;
        }
        if (e.type == EventType::kExit || e.type == EventType::kFailed || e.type == EventType::kStop) {
          MonitorStatus gone;
          gone.state = e.state;
          gone.last_exit = e.exit;
          gone.last_error = e.reason;
          (*errors)[id] = why_not_up(gone, e.uptime);
          countdown->one();
          return true;
        }
        return false;
      });
    }
    countdown->one();
  }

  static std::string why_not_up(const MonitorStatus& st, Millis uptime) {
    std::string why;
    if (st.last_exit) {
      why = st.last_exit->signaled ? "was killed by signal " + signal_name(st.last_exit->code)
                                   : "exited with code " + std::to_string(st.last_exit->code);
      if (uptime.count() > 0) why += " after running " + format_uptime(uptime);
    } else if (!st.last_error.empty()) {
      why = st.last_error;
    } else {
      why = std::string("is ") + state_name(st.state);
    }
    return why + " before it was running";
  }

  void on_app_output(App& app, OutputStream stream, std::string_view line) {
    if (log_subscribers_.empty()) return;
    const bool out = stream == OutputStream::kStdout;
    const protocol::LogLine item{app.spec.name, out ? "out" : "err", "", std::string(line)};
    publish(log_subscribers_, app.id, protocol::to_json(item),
            out ? &Subscriber::out : &Subscriber::err);
  }

  void publish(std::vector<Subscriber>& subscribers, std::uint64_t app_id, const json::object& item,
               bool Subscriber::*wants = nullptr) {
    for (const Subscriber& s : subscribers) {
      if (!s.app_ids.empty() &&
          std::find(s.app_ids.begin(), s.app_ids.end(), app_id) == s.app_ids.end()) {
        continue;
      }
      if (wants != nullptr && !(s.*wants)) continue;
      if (auto session = s.session.lock()) session->send(protocol::make_item(s.request_id, item));
    }
  }

  void subscribe(std::vector<Subscriber>& list, const std::shared_ptr<Session>& session,
                 std::uint64_t request_id, std::vector<std::uint64_t> app_ids, bool out = true,
                 bool err = true) {
    const std::uint64_t key = ++last_subscriber_;
    list.push_back({key, session, request_id, std::move(app_ids), out, err});
    std::weak_ptr<bool> alive = alive_;
    session->on_close([this, alive, &list, key] {
      if (alive.expired()) return;
      std::erase_if(list, [key](const Subscriber& s) { return s.key == key; });
    });
  }

  // Several events of one transition (exit, restart, start) save once.
  void persist_soon() {
    if (persist_pending_) return;
    persist_pending_ = true;
    std::weak_ptr<bool> alive = alive_;
    boost::asio::post(executor_, [this, alive] {
      if (alive.expired()) return;
      persist_pending_ = false;
      persist();
    });
  }

  // --- requests ---------------------------------------------------------

  // The command table: each command of the protocol and its handler, which
  // gets the request's args decoded into the command's struct.
  struct Route {
    Command command;
    void (*serve)(Impl& self, const protocol::Request& request,
                  const std::shared_ptr<Session>& session);
  };

  template <Command C, auto Handler>
  static void serve(Impl& self, const protocol::Request& request,
                    const std::shared_ptr<Session>& session) {
    auto args = protocol::decode_args<C>(request.args);
    if (!args) return fail(session, request, args.error());
    (self.*Handler)(*args, request, session);
  }

  static std::span<const Route> routes() {
    static constexpr Route kRoutes[] = {
        {Command::kPing, &serve<Command::kPing, &Impl::ping>},
        {Command::kStart, &serve<Command::kStart, &Impl::start>},
        {Command::kStop, &serve<Command::kStop, &Impl::stop>},
        {Command::kRestart, &serve<Command::kRestart, &Impl::restart>},
        {Command::kDelete, &serve<Command::kDelete, &Impl::delete_apps>},
        {Command::kSignal, &serve<Command::kSignal, &Impl::signal>},
        {Command::kList, &serve<Command::kList, &Impl::list>},
        {Command::kInfo, &serve<Command::kInfo, &Impl::info>},
        {Command::kLogs, &serve<Command::kLogs, &Impl::logs>},
        {Command::kEvents, &serve<Command::kEvents, &Impl::events>},
        {Command::kCleanlogs, &serve<Command::kCleanlogs, &Impl::cleanlogs>},
        {Command::kFlush, &serve<Command::kFlush, &Impl::flush>},
        {Command::kApply, &serve<Command::kApply, &Impl::apply_request>},
        {Command::kDump, &serve<Command::kDump, &Impl::dump>},
        {Command::kKill, &serve<Command::kKill, &Impl::kill>},
        {Command::kShutdown, &serve<Command::kShutdown, &Impl::shutdown_request>},
    };
    static_assert(
        [] {
          if (std::size(kRoutes) != std::size(protocol::kCommands)) return false;
          for (std::size_t i = 0; i < std::size(kRoutes); ++i) {
            if (kRoutes[i].command != protocol::kCommands[i]) return false;
          }
          return true;
        }(),
        "every command of protocol::kCommands has a route, in its order");
    return kRoutes;
  }

  template <class Reply>
  static void reply(const std::shared_ptr<Session>& session, const protocol::Request& request,
                    const Reply& result) {
    session->send(protocol::make_result(request.id, protocol::to_json(result)));
  }

  static void fail(const std::shared_ptr<Session>& session, const protocol::Request& request,
                   ErrorCode code, const std::string& message) {
    session->send(protocol::make_error(request.id, code, message));
  }

  // An Error answered with the code its kind means.
  static void fail(const std::shared_ptr<Session>& session, const protocol::Request& request,
                   const Error& error) {
    session->send(protocol::make_error(request.id, error));
  }

  void ping(const protocol::Empty&, const protocol::Request& request,
            const std::shared_ptr<Session>& session) {
    const auto uptime = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started_);
    reply(session, request,
          protocol::PingReply{::getpid(), protocol::kVersion, paths_.home, uptime, apps_.size()});
  }

  void start(const protocol::StartArgs& args, const protocol::Request& request,
             const std::shared_ptr<Session>& session) {
    std::optional<AppSpec> spec = args.spec;
    if (auto problem = check_name(spec->name); !problem.empty()) {
      return fail(session, request, ErrorCode::kInvalid, problem);
    }
    if (App* taken = find_name(spec->name); taken != nullptr) {
      return fail(session, request, ErrorCode::kExists,
                  "an app named \"" + spec->name + "\" already exists (id " +
                      std::to_string(taken->id) + "); pick another with --name");
    }
    fill_log_defaults(*spec);
    if (auto st = validate(spec->monitor); !st) {
      return fail(session, request, ErrorCode::kInvalid, st.error().message);
    }
    const std::uint64_t id = next_id_++;
    const bool autostart = spec->autostart;
    App& app = add_app(id, std::move(*spec), autostart, false);
    if (!autostart) {
      log_->info("added app {} (id {}), stopped", app.spec.name, id);
      persist();
      return reply(session, request, protocol::StartReply{{info_of(app), {}}});
    }
    if (auto st = start_app(app); !st) {
      const std::string message = st.error().message;
      log_->warn("app {} (id {}) not started: {}", app.spec.name, id, message);
      // A typo in the command must leave neither a failed entry nor a gap
      // in the ids behind.
      apps_.erase(id);
      if (next_id_ == id + 1) next_id_ = id;
      persist();
      return fail(session, request, ErrorCode::kSpawnFailed, message);
    }
    log_->info("started app {} (id {}), pid {}", app.spec.name, id, app.monitor->status().pid);
    persist();
    if (!args.wait) return reply(session, request, protocol::StartReply{{info_of(app), {}}});
    std::weak_ptr<bool> alive = alive_;
    wait_until_up({id}, [this, alive, id, request, session](std::map<std::uint64_t, std::string> errors) {
      if (alive.expired()) return;
      App* a = find_id(id);
      if (a == nullptr) return fail(session, request, ErrorCode::kNotFound, "the app was deleted");
      protocol::AppOutcome outcome{info_of(*a), {}};
      if (auto it = errors.find(id); it != errors.end()) outcome.error = it->second;
      reply(session, request, protocol::StartReply{std::move(outcome)});
    });
  }

  void stop(const protocol::TargetsArgs& args, const protocol::Request& request,
            const std::shared_ptr<Session>& session) {
    stop_restart_delete(Command::kStop, args.targets, false, request, session);
  }

  void restart(const protocol::RestartArgs& args, const protocol::Request& request,
               const std::shared_ptr<Session>& session) {
    stop_restart_delete(Command::kRestart, args.targets, args.wait, request, session);
  }

  void delete_apps(const protocol::TargetsArgs& args, const protocol::Request& request,
                   const std::shared_ptr<Session>& session) {
    stop_restart_delete(Command::kDelete, args.targets, false, request, session);
  }

  void stop_restart_delete(Command command, const std::vector<std::string>& targets, bool wait,
                           const protocol::Request& request,
                           const std::shared_ptr<Session>& session) {
    auto apps = resolve(targets);
    if (!apps) return fail(session, request, ErrorCode::kNotFound, apps.error().message);
    std::vector<std::uint64_t> ids;
    for (App* app : *apps) ids.push_back(app->id);
    std::weak_ptr<bool> alive = alive_;
    // Each app's outcome: its AppInfo, with an "error" when a restart left
    // it unable to run (the program is gone) or, with "wait", not running.
    auto answer = [this, alive, ids, request, session](bool erase,
                                                       std::map<std::uint64_t, std::string> errors) {
      if (alive.expired()) return;
      protocol::AppsReply infos;
      for (auto id : ids) {
        App* a = find_id(id);
        if (a == nullptr) continue;
        protocol::AppOutcome outcome{info_of(*a), {}};
        if (auto it = errors.find(id); it != errors.end()) outcome.error = it->second;
        infos.apps.push_back(std::move(outcome));
      }
      if (erase) {
        for (auto id : ids) erase_app(id);
      }
      persist();
      reply(session, request, infos);
    };
    if (command == Command::kRestart) {
      auto countdown = std::make_shared<Countdown>();
      countdown->left = apps->size() + 1;
      countdown->done = [this, alive, ids, answer, wait] {
        if (alive.expired()) return;
        std::map<std::uint64_t, std::string> errors;
        for (auto id : ids) {
          App* a = find_id(id);
          if (a == nullptr) continue;
          const MonitorStatus st = a->monitor->status();
          if (st.state == State::kFailed) errors[id] = st.last_error.empty() ? "failed" : st.last_error;
        }
        if (!wait) return answer(false, std::move(errors));
        std::vector<std::uint64_t> pending;
        for (auto id : ids) {
          if (!errors.contains(id)) pending.push_back(id);
        }
        wait_until_up(pending, [answer, errors](std::map<std::uint64_t, std::string> more) mutable {
          errors.merge(more);
          answer(false, std::move(errors));
        });
      };
      for (App* app : *apps) {
        app->wanted_up = true;
        app->monitor->restart([countdown] { countdown->one(); });
      }
      countdown->one();
      return;
    }
    const bool erase = command == Command::kDelete;
    stop_apps(*apps, false, [answer, erase](std::size_t) { answer(erase, {}); });
  }

  void signal(const protocol::SignalArgs& args, const protocol::Request& request,
              const std::shared_ptr<Session>& session) {
    auto apps = resolve(args.targets);
    if (!apps) return fail(session, request, ErrorCode::kNotFound, apps.error().message);
    for (App* app : *apps) {
      if (auto st = app->monitor->signal(args.signal); !st) {
        return fail(session, request, ErrorCode::kNotFound,
                    "app \"" + app->spec.name + "\" is not running");
      }
    }
    reply(session, request, protocol::AppsReply{infos_of(*apps)});
  }

  void list(const protocol::Empty&, const protocol::Request& request,
            const std::shared_ptr<Session>& session) {
    protocol::ListReply listed;
    for (auto& [id, app] : apps_) listed.apps.push_back(info_of(*app));
    reply(session, request, listed);
  }

  // The single app `target` names, or nullptr with an error already sent.
  App* one_target(const std::string& target, const protocol::Request& request,
                  const std::shared_ptr<Session>& session) {
    auto apps = resolve({target});
    if (!apps) {
      fail(session, request, ErrorCode::kNotFound, apps.error().message);
      return nullptr;
    }
    if (apps->size() != 1) {
      fail(session, request, ErrorCode::kBadRequest, request.cmd + ": expected one app, not \"all\"");
      return nullptr;
    }
    return apps->front();
  }

  // "target": one app -> {"app":...}; "targets": those apps, resolved as
  // stop's are -> {"apps":[...]}.
  void info(const protocol::InfoArgs& args, const protocol::Request& request,
            const std::shared_ptr<Session>& session) {
    auto full_info = [this](App& app) {
      return protocol::AppDetails{info_of(app), app.spec, app.source};
    };
    if (!args.target) {
      auto apps = resolve(args.targets);
      if (!apps) return fail(session, request, ErrorCode::kNotFound, apps.error().message);
      protocol::InfoReply out;
      for (App* app : *apps) out.apps.push_back(full_info(*app));
      return reply(session, request, out);
    }
    App* app = one_target(*args.target, request, session);
    if (app == nullptr) return;
    reply(session, request, protocol::InfoReply{full_info(*app), {}});
  }

  // The TARGETs of a request that may name none: none is every app ("all").
  static std::vector<std::string> optional_target_words(const std::vector<std::string>& given) {
    std::vector<std::string> targets = given;
    if (targets.empty()) targets.emplace_back("all");
    return targets;
  }

  // The apps of optional_target_words(), or an error already sent.
  std::optional<std::vector<App*>> optional_targets(const std::vector<std::string>& given,
                                                    const protocol::Request& request,
                                                    const std::shared_ptr<Session>& session) {
    auto apps = resolve(optional_target_words(given));
    if (!apps) {
      fail(session, request, ErrorCode::kNotFound, apps.error().message);
      return std::nullopt;
    }
    return *apps;
  }

  // Whom a subscription follows: nobody in particular (every app, those
  // started later too) when "all" is among the targets, else those apps.
  static std::vector<std::uint64_t> followed_ids(const std::vector<std::string>& given,
                                                 const std::vector<App*>& apps) {
    const auto words = optional_target_words(given);
    if (std::find(words.begin(), words.end(), "all") != words.end()) return {};
    std::vector<std::uint64_t> ids;
    for (App* app : apps) ids.push_back(app->id);
    return ids;
  }

  // Items: first {"apps":[NAME...]} (whose logs follow), then the last
  // lines of each file with its "path", then with "follow" {"following":true}
  // and every new line as it is written.
  void logs(const protocol::LogsArgs& args, const protocol::Request& request,
            const std::shared_ptr<Session>& session) {
    auto apps = optional_targets(args.targets, request, session);
    if (!apps) return;
    const std::size_t lines = args.lines;
    const bool follow = args.follow;
    const bool want_out = args.out;
    const bool want_err = args.err;
    protocol::LogsApps names;
    for (App* app : *apps) names.apps.emplace_back(app->spec.name);
    session->send(protocol::make_item(request.id, protocol::to_json(names)));
    for (App* app : *apps) {
      const LogOptions& l = app->spec.monitor.logs;
      auto send_tail = [&](const std::string& path, const char* stream) {
        if (path.empty()) return;
        for (const std::string& line : tail_lines(path, lines)) {
          const protocol::LogLine item{app->spec.name, stream, path, line};
          session->send(protocol::make_item(request.id, protocol::to_json(item)));
        }
      };
      // One file for both streams: its lines are not told apart.
      const bool combined = l.err_path == l.out_path;
      if (want_out || (combined && want_err)) send_tail(l.out_path, combined ? "log" : "out");
      if (want_err && !combined) send_tail(l.err_path, "err");
    }
    if (!follow) return reply(session, request, protocol::LogsReply{apps->size()});
    session->send(protocol::make_item(request.id, protocol::to_json(protocol::LogsFollowing{})));
    // Nothing runs between the tail above and this subscription: no line is
    // missed or shown twice.
    subscribe(log_subscribers_, session, request.id, followed_ids(args.targets, *apps), want_out,
              want_err);
  }

  void events(const protocol::EventsArgs& args, const protocol::Request& request,
              const std::shared_ptr<Session>& session) {
    auto apps = optional_targets(args.targets, request, session);
    if (!apps) return;
    subscribe(event_subscribers_, session, request.id, followed_ids(args.targets, *apps));
  }

  // Empties the current log files of the TARGETs (every app without one).
  void flush(const protocol::FlushArgs& args, const protocol::Request& request,
             const std::shared_ptr<Session>& session) {
    auto apps = optional_targets(args.targets, request, session);
    if (!apps) return;
    std::vector<std::string> flushed;
    for (App* app : *apps) {
      if (auto st = app->monitor->flush_logs(); !st) {
        return fail(session, request, ErrorCode::kInternal,
                    "app \"" + app->spec.name + "\": " + st.error().message);
      }
      flushed.emplace_back(app->spec.name);
    }
    log_->info("flushed the logs of {} apps", flushed.size());
    reply(session, request, protocol::FlushReply{std::move(flushed)});
  }

  void cleanlogs(const protocol::Empty&, const protocol::Request& request,
                 const std::shared_ptr<Session>& session) {
    int removed = 0;
    for (auto& [id, app] : apps_) {
      const LogOptions& l = app->spec.monitor.logs;
      if (!l.out_path.empty()) removed += remove_rotated_logs(l.out_path);
      if (!l.err_path.empty() && l.err_path != l.out_path) removed += remove_rotated_logs(l.err_path);
    }
    log_->info("cleanlogs removed {} rotated log files", removed);
    reply(session, request, protocol::CleanlogsReply{removed});
  }

  // --- config files -----------------------------------------------------

  // What apply() did: the reply to `apply`.
  using ApplyReport = protocol::ApplyReply;

  // What differs between two specs of one app, by the names of the keys of
  // a file: "cmd", "env.PORT", "kill_timeout"...
  static std::vector<std::string> spec_changes(const AppSpec& before, const AppSpec& after) {
    const json::object a = protocol::to_json(before);
    const json::object b = protocol::to_json(after);
    std::vector<std::string> changes;
    for (const auto& [key, value] : b) {
      if (key == "env") continue;
      const json::value* old = a.if_contains(key);
      if (old == nullptr || *old != value) {
        std::string name(key);
        if (name.ends_with("_ms")) name.resize(name.size() - 3);  // the file's key
        changes.push_back(name);
      }
    }
    auto vars = [](const std::vector<std::string>& env) {
      std::map<std::string, std::string> out;
      for (const auto& kv : env) {
        const auto eq = kv.find('=');
        out[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
      }
      return out;
    };
    const auto va = vars(before.monitor.env);
    const auto vb = vars(after.monitor.env);
    for (const auto& [k, v] : vb) {
      if (auto it = va.find(k); it == va.end() || it->second != v) changes.push_back("env." + k);
    }
    for (const auto& [k, v] : va) {
      if (!vb.contains(k)) changes.push_back("env." + k);
    }
    return changes;
  }

  // What apply() would do, done nothing (--dry-run).
  ApplyReport plan(const std::string& path, const std::vector<AppSpec>& specs, bool reload) {
    ApplyReport report;
    for (const AppSpec& spec : specs) {
      App* existing = find_name(spec.name);
      if (existing == nullptr) {
        (spec.autostart ? report.started : report.added).emplace_back(spec.name);
      } else if (existing->spec == spec) {
        report.unchanged.emplace_back(spec.name);
      } else {
        report.restarted.emplace_back(spec.name);
        report.changes.emplace_back(spec.name, spec_changes(existing->spec, spec));
      }
    }
    if (reload) {
      for (auto& [id, app] : apps_) {
        if (app->source == path &&
            std::none_of(specs.begin(), specs.end(),
                         [&](const AppSpec& s) { return s.name == app->spec.name; })) {
          report.deleted.emplace_back(app->spec.name);
        }
      }
    }
    return report;
  }

  void remember_source(const std::string& path, std::vector<std::string> env, bool watch) {
    Source& source = sources_[path];
    source.env = std::move(env);
    source.watch = source.watch || watch;
    if (!source.watch || source.watcher) return;
    FileWatcher::Options o;
    o.paths = {path};
    o.debounce = Millis{200};
    std::weak_ptr<bool> alive = alive_;
    auto watcher = FileWatcher::create(executor_, *clock_, o, [this, alive, path](const std::string&) {
      if (!alive.expired()) reload_source(path, "changed on disk");
    });
    if (!watcher) {
      log_->error("cannot watch {}: {}", path, watcher.error().message);
      return;
    }
    source.watcher = std::move(*watcher);
    log_->info("watching {} for changes", path);
  }

  // Re-reads a remembered file and applies it as `sempre reload` would. A
  // file with any error changes nothing.
  void reload_source(const std::string& path, const std::string& why) {
    auto it = sources_.find(path);
    if (it == sources_.end()) return;
    const AppsFile file = load_apps_file(path, it->second.env, paths_.home + "/config.toml");
    if (!file.ok()) {
      log_->error("{} {}, but has errors; nothing changed:", path, why);
      for (const ConfigError& e : file.errors) log_->error("  {}", e.str());
      return;
    }
    log_->info("reloading {} ({})", path, why);
    apply(path, file.apps, /*reload=*/true, {}, it->second.env, it->second.watch, /*dry_run=*/false,
          [this, path](Result<ApplyReport> report) {
            if (!report) {
              log_->error("reload of {} failed: {}", path, report.error().message);
              return;
            }
            log_->info("reloaded {}: {}", path, json::serialize(protocol::to_json(*report)));
          });
  }

  void apply_request(const protocol::ApplyArgs& args, const protocol::Request& request,
                     const std::shared_ptr<Session>& session) {
    std::vector<AppSpec> apps = args.specs;
    const std::string& path = args.file;
    std::vector<std::string> env = args.env;
    // A file's apps keep the environment they were first started with: a
    // shell with another PWD or SSH_* must not make every app "changed".
    // The file is read again here with that environment, unless the user
    // asks to take the current one (--update-env).
    if (auto it = sources_.find(path); it != sources_.end() && !args.update_env) {
      AppsFile again = load_apps_file(path, it->second.env, paths_.home + "/config.toml");
      if (again.ok()) {
        apps = std::move(again.apps);
        env = it->second.env;
      }
    }
    apply(path, std::move(apps), args.mode == protocol::ApplyMode::kReload, args.only,
          std::move(env), args.watch, args.dry_run,
          [this, request, session](Result<ApplyReport> report) {
            if (!report) return fail(session, request, report.error());
            reply(session, request, *report);
          });
  }

  // Brings the apps of config file `path` in line with `specs`: new ones
  // start; with `reload`, changed ones restart with their new spec and those
  // no longer in the file are deleted. Checks everything before changing
  // anything. `done` gets what was done.
  void apply(const std::string& path, std::vector<AppSpec> specs, bool reload,
             const std::vector<std::string>& only, std::vector<std::string> env, bool watch,
             bool dry_run, std::function<void(Result<ApplyReport>)> done) {
    for (const std::string& name : only) {
      if (std::none_of(specs.begin(), specs.end(), [&](const AppSpec& s) { return s.name == name; })) {
        return done(Error{ErrorKind::kNotFound, "no app named \"" + name + "\" in " + path});
      }
    }
    if (!only.empty()) {
      std::erase_if(specs, [&](const AppSpec& s) {
        return std::find(only.begin(), only.end(), s.name) == only.end();
      });
    }
    for (AppSpec& spec : specs) {
      fill_log_defaults(spec);
      if (auto problem = check_name(spec.name); !problem.empty()) {
        return done(Error{ErrorKind::kInvalidArgument, path + ": " + problem});
      }
      if (auto st = validate(spec.monitor); !st) {
        return done(Error{ErrorKind::kInvalidArgument, path + ": app \"" + spec.name + "\": " + st.error().message});
      }
      App* existing = find_name(spec.name);
      if (existing == nullptr || existing->spec == spec) continue;
      if (!reload || existing->source != path) {
        return done(
            Error{ErrorKind::kExists,
                  "an app named \"" + spec.name + "\" already exists (id " +
                      std::to_string(existing->id) + ") with another spec; " +
                      (existing->source == path ? "use sempre reload " + path
                                                : "delete it or rename the app in " + path)});
      }
    }
    if (dry_run) return done(plan(path, specs, reload));
    remember_source(path, std::move(env), watch);

    auto report = std::make_shared<ApplyReport>();
    std::vector<std::uint64_t> removed;
    std::vector<std::pair<App*, AppSpec>> changed;
    if (reload) {
      for (auto& [id, app] : apps_) {
        if (app->source != path) continue;
        if (std::none_of(specs.begin(), specs.end(), [&](const AppSpec& s) { return s.name == app->spec.name; })) {
          removed.push_back(id);
        }
      }
    }
    for (AppSpec& spec : specs) {
      App* existing = find_name(spec.name);
      if (existing == nullptr) {
        const std::string name = spec.name;
        const bool autostart = spec.autostart;
        App& app = add_app(next_id_++, std::move(spec), autostart, false);
        app.source = path;
        if (!autostart) {
          report->added.emplace_back(name);
        } else if (auto st = start_app(app); !st) {
          report->failed.push_back({name, st.error().message});
          const std::uint64_t id = app.id;
          erase_app(id);
          if (next_id_ == id + 1) next_id_ = id;
        } else {
          report->started.emplace_back(name);
        }
      } else if (existing->spec == spec) {
        if (existing->source.empty()) existing->source = path;
        const State state = existing->monitor->status().state;
        const bool up = state == State::kStarting || state == State::kRunning || state == State::kBackoff;
        if (up || reload || !spec.autostart) {
          report->unchanged.emplace_back(spec.name);
        } else if (auto st = start_app(*existing); !st) {
          report->failed.push_back({spec.name, st.error().message});
        } else {
          report->started.emplace_back(spec.name);
        }
      } else {
        changed.emplace_back(existing, std::move(spec));
      }
    }

    std::weak_ptr<bool> alive = alive_;
    auto countdown = std::make_shared<Countdown>();
    countdown->left = removed.size() + changed.size() + 1;
    countdown->done = [this, alive, report, done] {
      if (alive.expired()) return;
      persist();
      done(*report);
    };
    for (std::uint64_t id : removed) {
      App* app = find_id(id);
      report->deleted.emplace_back(app->spec.name);
      app->wanted_up = false;
      app->monitor->stop([this, alive, id, countdown] {
        if (alive.expired()) return;
        erase_app(id);
        countdown->one();
      });
    }
    for (auto& [app, spec] : changed) {
      const std::uint64_t id = app->id;
      report->restarted.emplace_back(spec.name);
      report->changes.emplace_back(spec.name, spec_changes(app->spec, spec));
      app->monitor->stop([this, alive, id, spec = std::move(spec), report, countdown] {
        if (alive.expired()) return;
        if (App* a = find_id(id)) {
          // The old Monitor finished its stop; it is not on the stack here.
          std::unique_ptr<Monitor> old = std::move(a->monitor);
          a->restarts_before += old->status().restarts + 1;  // the reload's own restart counts
          a->spec = spec;
          make_monitor(*a, /*resume=*/true);
          boost::asio::post(executor_, [gone = std::shared_ptr<Monitor>(std::move(old))] {});
          if (auto st = start_app(*a); !st) {
            report->failed.push_back({a->spec.name, st.error().message});
          }
        }
        countdown->one();
      });
    }
    countdown->one();
  }

  void dump(const protocol::Empty&, const protocol::Request& request,
            const std::shared_ptr<Session>& session) {
    protocol::DumpReply dumped;
    for (const auto& [id, app] : apps_)
      dumped.apps.push_back({app->spec, app->wanted_up, app->source});
    reply(session, request, dumped);
  }

  void kill(const protocol::Empty&, const protocol::Request& request,
            const std::shared_ptr<Session>& session) {
    stop_everything(request, session, /*forget=*/true);
  }

  void shutdown_request(const protocol::Empty&, const protocol::Request& request,
                        const std::shared_ptr<Session>& session) {
    stop_everything(request, session, /*forget=*/false);
  }

  void stop_everything(const protocol::Request& request, const std::shared_ptr<Session>& session,
                       bool forget) {
    log_->info("{} requested: stopping every app", request.cmd);
    std::weak_ptr<bool> alive = alive_;
    stop_all(/*keep_wanted=*/!forget, [this, alive, request, session](std::size_t n) {
      if (alive.expired()) return;
      persist();
      reply(session, request, protocol::StoppedReply{n});
      if (on_kill_) on_kill_();
    });
  }

  boost::asio::any_io_executor executor_;
  HomePaths paths_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Clock> clock_;
  std::chrono::steady_clock::time_point started_;
  std::map<std::string, Source> sources_;
  std::map<std::uint64_t, std::unique_ptr<App>> apps_;
  std::uint64_t next_id_ = 1;
  std::vector<Subscriber> log_subscribers_;
  std::vector<Subscriber> event_subscribers_;
  std::uint64_t last_subscriber_ = 0;
  bool persist_pending_ = false;
  std::function<void()> on_kill_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

AppManager::AppManager(boost::asio::any_io_executor executor, HomePaths paths,
                       std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(paths), std::move(log))) {}
AppManager::~AppManager() = default;
void AppManager::restore() { impl_->restore(); }
void AppManager::handle(const protocol::Request& request, const std::shared_ptr<Session>& session) {
  impl_->handle(request, session);
}
void AppManager::shutdown(std::function<void()> done) { impl_->shutdown(std::move(done)); }
void AppManager::reload_sources() { impl_->reload_sources(); }
void AppManager::set_on_kill(std::function<void()> on_kill) { impl_->set_on_kill(std::move(on_kill)); }
std::vector<pid_t> AppManager::owned_pids() const { return impl_->owned_pids(); }

}  // namespace sempre
