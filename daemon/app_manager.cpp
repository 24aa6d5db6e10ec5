#include "app_manager.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>

#include "app_config.hpp"
#include "app_registry.hpp"
#include "config_sources.hpp"
#include "keeper_link.hpp"
#include "os.hpp"
#include "protocol.hpp"
#include "reload_planner.hpp"
#include "sempre/log_files.hpp"
#include "sempre/monitor.hpp"
#include "sempre/proc_stats.hpp"
#include "state_store.hpp"
#include "subscriptions.hpp"

namespace sempre {
namespace {

namespace json = boost::json;
using protocol::Command;
using protocol::ErrorCode;

// How often a state.json that could not be saved is tried again.
constexpr Millis kSaveRetry{5000};

// Sends `sig`, then SIGKILL after `timeout`, to the process set of `pid`
// (its cgroup under `cgroup_parent` if it has one, else its process tree
// and the orphans marked SEMPRE_GROUP=pid), a process left running by an
// earlier daemon (not our child: watched through a pidfd). `done` runs once
// it is gone, and with it all of its set.
class StaleChildStopper : public std::enable_shared_from_this<StaleChildStopper> {
 public:
  static void stop(boost::asio::any_io_executor executor, pid_t pid,
                   const std::string& cgroup_parent, int sig, Millis timeout,
                   std::function<void()> done) {
    std::string cgroup;
    if (!cgroup_parent.empty()) {
      const std::string own = cgroup_parent + "/" + std::to_string(pid);
      std::error_code ec;
      if (std::filesystem::is_directory(own, ec)) cgroup = own;
    }
    auto self = std::shared_ptr<StaleChildStopper>(
        new StaleChildStopper(executor, pid, std::move(cgroup), std::move(done)));
    self->begin(sig, timeout);
  }

 private:
  StaleChildStopper(boost::asio::any_io_executor executor, pid_t pid, std::string cgroup,
                    std::function<void()> done)
      : pid_(pid),
        cgroup_(std::move(cgroup)),
        fd_(executor),
        timer_(executor),
        done_(std::move(done)) {}

  // The group, and each member of the set outside it.
  void signal_set(int sig) {
    ::kill(-pid_, sig);
    if (auto members = try_members(ProcessSet{pid_, cgroup_, true})) {
      for (pid_t member : *members) ::kill(member, sig);
    }
  }

  void begin(int sig, Millis timeout) {
    auto pidfd = os::open_pidfd(pid_);
    signal_set(sig);
    if (!pidfd) {
      finish();
      return;
    }
    boost::system::error_code ec;
    fd_.assign(pidfd->get(), ec);
    if (ec) {
      finish();
      return;
    }
    pidfd->release();
    auto self = shared_from_this();
    fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                   [self](const boost::system::error_code&) { self->finish(); });
    timer_.expires_after(timeout);
    timer_.async_wait([self](const boost::system::error_code& error) {
      if (error) return;
      self->signal_set(SIGKILL);
    });
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    signal_set(SIGKILL);                             // what is left of its set
    if (!cgroup_.empty()) ::rmdir(cgroup_.c_str());  // once the kernel has emptied it
    timer_.cancel();
    boost::system::error_code ignored;
    fd_.close(ignored);
    if (done_) done_();
  }

  pid_t pid_;
  std::string cgroup_;
  boost::asio::posix::stream_descriptor fd_;
  boost::asio::steady_timer timer_;
  std::function<void()> done_;
  bool finished_ = false;
};

// A Monitor replaced by a reload, until it is destroyed: first the Monitor,
// then what it told of its runs.
struct RetiredMonitor {
  std::unique_ptr<RunKeeper> run_keeper;
  std::unique_ptr<Monitor> monitor;
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
  Impl(boost::asio::any_io_executor executor, HomePaths paths, std::shared_ptr<spdlog::logger> log,
       MonitorSeams seams)
      : executor_(std::move(executor)),
        paths_(std::move(paths)),
        log_(std::move(log)),
        seams_(seams),
        own_clock_(seams.clock != nullptr ? nullptr : make_asio_clock(executor_)),
        clock_(seams.clock != nullptr ? *seams.clock : *own_clock_),
        sources_(
            executor_, clock_, log_,
            [this](const std::string& path, const std::string& why) { reload_source(path, why); }),
        started_(std::chrono::steady_clock::now()) {}

  ~Impl() {
    // Monitors kill what still runs; subscribers are only weak references.
    registry_.clear();
  }

  void set_keeper(KeeperLink* keeper) { keeper_ = keeper; }
  void set_on_reexec(std::function<void()> on_reexec) { on_reexec_ = std::move(on_reexec); }

  void release_all() {
    (void)persist();
    for (App* app : registry_.all()) app->monitor->release();
  }

  void restore() {
    // What the keeper held for the last worker, by app id.
    std::map<std::uint64_t, std::pair<std::string, KeeperLink::Entry>> kept;
    std::vector<std::pair<std::string, KeeperLink::Entry>> orphans;
    if (keeper_ != nullptr) {
      for (auto& [name, entry] : keeper_->take_entries()) {
        const std::optional<KeepName> parsed = parse_keep_name(name);
        if (!parsed) {
          keeper_->drop(name);
          continue;
        }
        next_keep_suffix_ = std::max(next_keep_suffix_, parsed->suffix + 1);
        // Two Monitors of one app (a reload under way): the later one's run
        // is the app's; the earlier one's is stopped below.
        auto it = kept.find(parsed->id);
        if (it != kept.end()) {
          if (parse_keep_name(it->second.first)->suffix < parsed->suffix) {
            orphans.push_back(std::exchange(it->second, std::pair{name, std::move(entry)}));
          } else {
            orphans.emplace_back(name, std::move(entry));
          }
          continue;
        }
        kept.emplace(parsed->id, std::pair{name, std::move(entry)});
      }
    }
    if (!restore_saved(kept)) {
      // Without state.json nothing says what the kept runs are: they are
      // left running, and held by the keeper, rather than stopped.
      if (!kept.empty()) {
        log_->error("{} kept run(s) left running: state.json could not be read", kept.size());
      }
      return;
    }
    // Runs of apps that state.json does not have (deleted just before the
    // last worker died): nobody wants them.
    for (auto& [id, named] : kept) orphans.push_back(std::move(named));
    for (auto& named : orphans) {
      auto& [name, entry] = named;
      log_->warn("kept run {} belongs to no app: stopping it", name);
      const std::optional<KeptRun> run = KeptRun::parse(entry.text);
      const auto process = run ? kept_process(*run, entry) : std::nullopt;
      keeper_->drop(name);
      if (process && process_start_time(process->first) == process->second) {
        StaleChildStopper::stop(executor_, process->first, seams_.cgroup_parent, SIGTERM,
                                Millis{5000}, [] {});
      }
    }
    (void)persist();
  }

 private:
  struct KeepName {
    std::uint64_t id = 0;
    std::uint64_t suffix = 0;
  };

  // "app:ID.N": the runs of app ID's Nth Monitor (several Monitors of one
  // app may overlap while a reload replaces one).
  static std::optional<KeepName> parse_keep_name(std::string_view name) {
    if (!name.starts_with("app:")) return std::nullopt;
    name.remove_prefix(4);
    const auto dot = name.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    KeepName parsed;
    auto number = [](std::string_view text, std::uint64_t& value) {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      return ec == std::errc() && end == text.data() + text.size() && !text.empty();
    };
    if (!number(name.substr(0, dot), parsed.id) || !number(name.substr(dot + 1), parsed.suffix)) {
      return std::nullopt;
    }
    return parsed;
  }

  // A kept run's main process. A run kept as "pending" was being spawned
  // when the worker died: its main process, if the fork happened, is a child
  // of the keeper that holds the run's pipes, which it got at the fork, long
  // before they are its standard output and error: it is found however far
  // it got before exec. Of such children (a daemonizing app's orphans hold
  // the pipes too), the oldest is the main process.
  std::optional<std::pair<pid_t, std::uint64_t>> kept_process(const KeptRun& run,
                                                              const KeeperLink::Entry& entry) {
    if (run.pid) return std::pair{*run.pid, run.start_time};
    std::vector<std::string> pipes;
    for (const os::UniqueFd& fd : entry.fds) {
      struct stat st {};
      if (::fstat(fd.get(), &st) == 0) pipes.push_back("pipe:[" + std::to_string(st.st_ino) + "]");
    }
    std::optional<std::pair<pid_t, std::uint64_t>> oldest;
    const pid_t self = ::getpid();
    std::error_code ec;
    for (const auto& dir : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string base = dir.path().filename().string();
      pid_t pid = 0;
      auto [end, err] = std::from_chars(base.data(), base.data() + base.size(), pid);
      if (err != std::errc() || end != base.data() + base.size() || pid == self) continue;
      auto stat = os::read_proc_stat(pid);
      if (!stat || stat->ppid != keeper_->keeper_pid() || stat->state == 'Z') continue;
      // Forked in the same clock tick: the lower pid came first.
      if (oldest && (oldest->second < stat->starttime ||
                     (oldest->second == stat->starttime && oldest->first < pid))) {
        continue;
      }
      std::error_code fd_ec;
      for (const auto& fd : std::filesystem::directory_iterator(dir.path() / "fd", fd_ec)) {
        std::error_code link_ec;
        const auto target = std::filesystem::read_symlink(fd.path(), link_ec);
        if (!link_ec && std::find(pipes.begin(), pipes.end(), target.string()) != pipes.end()) {
          oldest = std::pair{pid, stat->starttime};
          break;
        }
      }
    }
    return oldest;
  }

  // How long process `pid`, started at `start_time` (clock ticks after
  // boot), has run; 0 when it is gone.
  // `ended`: the process ended already, and its age is its age when the
  // last worker reaped it, near enough.
  static Millis process_age(pid_t pid, std::uint64_t start_time, bool ended = false) {
    if (ended ? start_time == 0 : process_start_time(pid) != start_time) return Millis{0};
    double up = 0;
    if (FILE* f = std::fopen("/proc/uptime", "re")) {
      if (std::fscanf(f, "%lf", &up) != 1) up = 0;
      std::fclose(f);
    }
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double age = up - static_cast<double>(start_time) / (ticks > 0 ? ticks : 100);
    return Millis{age > 0 ? static_cast<Millis::rep>(age * 1000) : 0};
  }

  // Takes the kept run of `app` over; false when there is none to take
  // (the keeper's entry is dropped then).
  bool adopt_kept(App& app, const std::string& name, KeeperLink::Entry& entry) {
    const std::optional<KeptRun> run = KeptRun::parse(entry.text);
    const auto process = run ? kept_process(*run, entry) : std::nullopt;
    if (!process || entry.fds.size() < 2) {
      log_->info("app {} (id {}): kept run {} ({}, {} pipe(s)) has no process to take over",
                 app.spec.name, app.id, name, entry.text, entry.fds.size());
      keeper_->drop(name);
      return false;
    }
    Adoption adoption;
    adoption.pid = process->first;
    adoption.start_time = process->second;
    adoption.uptime = process_age(adoption.pid, adoption.start_time, run->exit.has_value());
    adoption.stdout_fd = entry.fds[0].release();
    adoption.stderr_fd = entry.fds[1].release();
    if (entry.fds.size() > 2) adoption.notify_fd = entry.fds[2].release();
    adoption.exit_status = keeper_->exit_source();
    // A spawn cut off (pending) had not been seen ready either.
    adoption.ready = run->pid && !run->starting;
    if (run->exit) {
      // Reaped by the last worker already: nobody else will report it.
      adoption.exit_status = [status = *run->exit](
                                 pid_t, std::function<void(std::optional<ExitStatus>)> done) {
        done(status);
      };
    }
    if (!run->pid) {
      // The keeper learns the pid the spawn could not report.
      KeptRun found;
      found.pid = adoption.pid;
      found.start_time = adoption.start_time;
      keeper_->keep(name, found.text());
    }
    if (auto st = app.monitor->adopt(std::move(adoption)); !st) {
      log_->error("app {} (id {}): cannot take pid {} over: {}", app.spec.name, app.id,
                  process->first, st.error().message);
      keeper_->drop(name);
      return false;
    }
    keeper_->note_start(name, process->second);
    log_->info("app {} (id {}): took over pid {} of the last worker", app.spec.name, app.id,
               process->first);
    return true;
  }

 public:
  // False when state.json could not be read or was set aside.
  bool restore_saved(std::map<std::uint64_t, std::pair<std::string, KeeperLink::Entry>>& kept) {
    auto loaded = load_state(paths_.state);
    if (!loaded) {
      log_->error("{}", loaded.error().message);
      load_warnings_ = {loaded.error().message};
      return false;
    }
    for (const std::string& warning : loaded->warnings) log_->warn("{}", warning);
    load_warnings_ = loaded->warnings;
    // Something left out: a kept run may be of an app not restored, and is
    // left running rather than stopped.
    const bool usable = loaded->warnings.empty();
    registry_.skip_ids_below(loaded->state.next_id);
    for (SavedSource& source : loaded->state.sources) {
      sources_.remember(source.path, std::move(source.env), source.watch);
    }
    for (SavedApp& saved : loaded->state.apps) {
      App& app = registry_.add_with_id(saved.id, std::move(saved.spec));
      auto kept_run = kept.find(app.id);
      make_monitor(app, saved.wanted_up ? Wanted::kUp : Wanted::kDown, /*resume=*/true,
                   kept_run != kept.end() ? kept_run->second.first : std::string());
      app.source = saved.source;
      app.restarts_before = saved.restarts;
      app.out_dropped_before = saved.out_dropped;
      app.err_dropped_before = saved.err_dropped;
      log_->info("restored app {} (id {}), wanted {}", app.spec.name, app.id,
                 wanted_up(app) ? "up" : "down");
      if (kept_run != kept.end()) {
        auto named = std::move(kept_run->second);
        kept.erase(kept_run);
        if (adopt_kept(app, named.first, named.second)) {
          // A stop was under way when the last worker died: it goes on.
          if (!saved.wanted_up) app.monitor->stop();
          continue;
        }
      }
      if (!wanted_up(app)) continue;
      const std::uint64_t id = app.id;
      auto start = [this, id] {
        App* a = find_id(id);
        if (a == nullptr || !wanted_up(*a)) return;
        if (auto st = start_app(*a); !st) {
          log_->error("app {} (id {}) cannot start: {}", a->spec.name, id, st.error().message);
        }
      };
      if (saved.pid && saved.pid_start_time &&
          process_start_time(*saved.pid) == saved.pid_start_time) {
        log_->warn("app {} (id {}): pid {} of an earlier daemon still runs; stopping it first",
                   app.spec.name, app.id, *saved.pid);
        // Shown as stopping meanwhile, and commands for the app wait: none
        // may start a second copy beside it.
        app.stale_pid = *saved.pid;
        auto then = [this, id, start] {
          App* a = find_id(id);
          if (a == nullptr) return;
          a->stale_pid = 0;
          // What waited goes first: a stop asked meanwhile keeps it down,
          // and a daemon stopping (daemon stop keeps it wanted up) starts
          // nothing more.
          for (auto& waiting : std::exchange(a->after_stale, {})) waiting();
          if (!stopping_everything_) start();
        };
        StaleChildStopper::stop(executor_, *saved.pid, seams_.cgroup_parent,
                                app.spec.monitor.kill_signal, app.spec.monitor.kill_timeout, then);
      } else {
        start();
      }
    }
    return usable;
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
      (void)persist();
      if (done) done();
    });
  }

  void set_on_kill(std::function<void()> on_kill) { on_kill_ = std::move(on_kill); }

  void reload_sources() { sources_.reload_all("SIGHUP"); }

 private:
  // At most one new CPU sample per app within this long.
  static constexpr auto kCpuWindow = std::chrono::seconds(1);

  // --- apps -------------------------------------------------------------

  // A new app, under the next id, with its Monitor.
  App& add_app(AppSpec spec, Wanted wanted) {
    App& app = registry_.add(std::move(spec));
    make_monitor(app, wanted, /*resume=*/false);
    return app;
  }

  // `wanted`: the wanted state it reports until a command changes it.
  // `resume`: the app ran under an earlier daemon, so its next run appends
  // to the logs of the runs before rather than truncating them.
  // `keep_name`: the name the keeper holds this Monitor's run under (a run
  // to adopt); empty: a new one.
  void make_monitor(App& app, Wanted wanted, bool resume, std::string keep_name = {}) {
    MonitorOptions options = app.spec.monitor;
    if (resume) options.logs.append = true;
    MonitorSeams seams = seams_;
    if (keeper_ != nullptr) {
      if (keep_name.empty()) {
        keep_name = "app:" + std::to_string(app.id) + "." + std::to_string(next_keep_suffix_++);
      }
      app.keep_name = keep_name;
      app.run_keeper = keeper_->run_keeper(keep_name);
      seams.keeper = app.run_keeper.get();
    }
    app.monitor = std::make_unique<Monitor>(executor_, options, wanted, seams);
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

  Status start_app(App& app) { return app.monitor->start(); }

  // Whether it is wanted up: its Monitor owns the flag.
  static bool wanted_up(const App& app) { return app.monitor->status().wanted_up; }

  // `failed_start`: its first start failed, and it gives its id back.
  void erase_app(std::uint64_t id, bool failed_start = false) {
    std::shared_ptr<App> gone = failed_start ? registry_.withdraw(id) : registry_.remove(id);
    if (gone == nullptr) return;
    log_->info("deleted app {} (id {})", gone->spec.name, id);
    // The Monitor may be inside its own callback: destroy it later.
    boost::asio::post(executor_, [gone] {});
  }

  App* find_id(std::uint64_t id) { return registry_.find_id(id); }
  App* find_name(const std::string& name) { return registry_.find_name(name); }
  Result<std::vector<App*>> resolve(const std::vector<std::string>& targets) {
    return registry_.resolve(targets);
  }

  protocol::AppInfo info_of(App& app) {
    protocol::AppInfo info;
    info.id = app.id;
    info.name = app.spec.name;
    info.status = app.monitor->status();
    if (app.stale_pid != 0) {
      info.status.state = State::kStopping;
      info.status.pid = app.stale_pid;
    }
    info.status.restarts += app.restarts_before;
    info.status.out_dropped += app.out_dropped_before;
    info.status.err_dropped += app.err_dropped_before;
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
      const std::uint64_t used =
          info.usage.cpu_ms >= app.cpu_ms ? info.usage.cpu_ms - app.cpu_ms : 0;
      app.cpu_percent =
          elapsed > 0 ? 100.0 * static_cast<double>(used) / static_cast<double>(elapsed) : 0;
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

  Status persist() {
    SavedState state;
    state.next_id = registry_.next_id();
    for (App* app : registry_.all()) {
      SavedApp saved;
      saved.id = app->id;
      saved.spec = app->spec;
      const MonitorStatus status = app->monitor->status();
      saved.wanted_up = status.wanted_up;
      if (status.pid != 0) {
        saved.pid = status.pid;
        saved.pid_start_time = process_start_time(status.pid);
      }
      saved.source = app->source;
      saved.restarts = app->restarts_before + status.restarts;
      saved.out_dropped = app->out_dropped_before + status.out_dropped;
      saved.err_dropped = app->err_dropped_before + status.err_dropped;
      state.apps.push_back(std::move(saved));
    }
    state.sources = sources_.saved();
    Status st = save_state(paths_.state, state);
    if (!st) {
      // Said once, not on every retry; a full disk may not take the log
      // line either.
      if (!save_failing_) {
        save_failing_ = true;
        log_->error("cannot save {}: {}; retrying every {}", paths_.state, st.error().message,
                    format_duration(kSaveRetry));
      }
      std::weak_ptr<bool> alive = alive_;
      save_retry_ = clock_.start_timer(kSaveRetry, [this, alive] {
        if (alive.expired()) return;
        save_retry_.reset();
        (void)persist();
      });
    } else if (save_failing_) {
      save_failing_ = false;
      save_retry_.reset();
      log_->info("saved {} again", paths_.state);
    }
    return st;
  }

  // "could not save state: No space left on device (PATH)", of a failed
  // persist().
  std::string could_not_save(const Status& saved) const {
    const Error& e = saved.error();
    if (e.os_error == 0) return "could not save state: " + e.message;
    return "could not save state: " + std::string(std::strerror(e.os_error)) + " (" + paths_.state +
           ")";
  }

  // The answer to a command whose change could not be saved, and whether
  // the change was made.
  std::string unsaved_message(const Status& saved, bool changed) const {
    return could_not_save(saved) +
           (changed ? "; the change is made, but not saved yet: the daemon retries every " +
                          format_duration(kSaveRetry) +
                          ", and a daemon restart before then would undo it"
                    : "; nothing was changed");
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
      auto one = [countdown] { countdown->one(); };
      if (keep_wanted) {
        app->monitor->stop_keep_wanted(one);
      } else {
        app->monitor->stop(one);
      }
    }
    countdown->one();
  }

  void stop_all(bool keep_wanted, std::function<void(std::size_t)> done) {
    stop_apps(registry_.all(), keep_wanted, std::move(done));
  }

  // --- events and output ------------------------------------------------

  void on_app_event(App& app, const Event& e) {
    const std::string line = describe(e);
    if (e.type == EventType::kFailed) {
      log_->error("app {} (id {}): {}", app.spec.name, app.id, line);
    } else if (e.type == EventType::kLogError) {
      log_->warn("app {} (id {}): {}", app.spec.name, app.id, line);
    } else {
      log_->info("app {} (id {}): {}", app.spec.name, app.id, line);
    }
    // The pid in state.json must follow every spawn and exit, and the
    // count of lost output its log's recovery.
    if (e.type == EventType::kStart || e.type == EventType::kExit ||
        e.type == EventType::kLogResumed) {
      persist_soon();
    }
    event_followers_.publish(app.id, protocol::to_json(protocol::EventItem{app.spec.name, e}));
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
        if (e.type == EventType::kExit || e.type == EventType::kFailed ||
            e.type == EventType::kStop) {
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
    if (log_followers_.empty()) return;
    const bool out = stream == OutputStream::kStdout;
    const protocol::LogLine item{app.spec.name, out ? "out" : "err", "", std::string(line)};
    log_followers_.publish(app.id, protocol::to_json(item), stream);
  }

  // Several events of one transition (exit, restart, start) save once.
  void persist_soon() {
    if (persist_pending_) return;
    persist_pending_ = true;
    std::weak_ptr<bool> alive = alive_;
    boost::asio::post(executor_, [this, alive] {
      if (alive.expired()) return;
      persist_pending_ = false;
      (void)persist();
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
        {Command::kReexec, &serve<Command::kReexec, &Impl::reexec_request>},
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
    const auto uptime =
        std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started_);
    // The daemon's pid is the one that holds the lock: the keeper's, when
    // there is one.
    const pid_t keeper = keeper_ != nullptr ? keeper_->keeper_pid() : 0;
    const pid_t pid = keeper > 0 ? keeper : ::getpid();
    reply(session, request,
          protocol::PingReply{pid, ::getpid(), protocol::kVersion, paths_.home, uptime,
                              registry_.size()});
  }

  void start(const protocol::StartArgs& args, const protocol::Request& request,
             const std::shared_ptr<Session>& session) {
    std::optional<AppSpec> spec = args.spec;
    if (auto problem = check_app_name(spec->name); !problem.empty()) {
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
    const bool autostart = spec->autostart;
    App& app = add_app(std::move(*spec), autostart ? Wanted::kUp : Wanted::kDown);
    const std::uint64_t id = app.id;
    // Saved before it runs: an app that state.json does not have would be
    // forgotten, or stopped as nobody's, by the next daemon.
    if (Status saved = persist(); !saved) {
      log_->warn("app {} (id {}) not added: state.json cannot be saved", app.spec.name, id);
      registry_.withdraw(id);
      return fail(session, request, ErrorCode::kInternal, unsaved_message(saved, false));
    }
    if (!autostart) {
      log_->info("added app {} (id {}), stopped", app.spec.name, id);
      return reply(session, request, protocol::StartReply{{info_of(app), {}}});
    }
    if (auto st = start_app(app); !st) {
      const std::string message = st.error().message;
      log_->warn("app {} (id {}) not started: {}", app.spec.name, id, message);
      // A typo in the command must leave neither a failed entry nor a gap
      // in the ids behind.
      registry_.withdraw(id);
      (void)persist();
      return fail(session, request, ErrorCode::kSpawnFailed, message);
    }
    log_->info("started app {} (id {}), pid {}", app.spec.name, id, app.monitor->status().pid);
    (void)persist();
    if (!args.wait) return reply(session, request, protocol::StartReply{{info_of(app), {}}});
    std::weak_ptr<bool> alive = alive_;
    wait_until_up({id},
                  [this, alive, id, request, session](std::map<std::uint64_t, std::string> errors) {
                    if (alive.expired()) return;
                    App* a = find_id(id);
                    if (a == nullptr)
                      return fail(session, request, ErrorCode::kNotFound, "the app was deleted");
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
    // An app whose earlier daemon's process is still being stopped is acted
    // on once that is over (the command is served again then).
    for (App* app : *apps) {
      if (app->stale_pid == 0) continue;
      std::weak_ptr<bool> alive = alive_;
      app->after_stale.push_back([this, alive, command, targets, wait, request, session] {
        if (!alive.expired()) stop_restart_delete(command, targets, wait, request, session);
      });
      return;
    }
    std::vector<std::uint64_t> ids;
    for (App* app : *apps) ids.push_back(app->id);
    // A stop or delete is done even when it cannot be saved (an app filling
    // the disk must still be stoppable), and answered as unsaved. A restart
    // changes what is saved only for an app wanted down, which it starts:
    // then it is refused when nothing can be saved, as a start is.
    const bool starts =
        command == Command::kRestart &&
        std::any_of(apps->begin(), apps->end(), [](const App* app) { return !wanted_up(*app); });
    if (starts) {
      if (Status saved = persist(); !saved) {
        return fail(session, request, ErrorCode::kInternal, unsaved_message(saved, false));
      }
    }
    const bool changes = command != Command::kRestart || starts;
    std::weak_ptr<bool> alive = alive_;
    // Each app's outcome: its AppInfo, with an "error" when a restart left
    // it unable to run (the program is gone) or, with "wait", not running.
    auto answer = [this, alive, ids, changes, request, session](
                      bool erase, std::map<std::uint64_t, std::string> errors) {
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
      if (Status saved = persist(); !saved && changes) {
        return fail(session, request, ErrorCode::kInternal, unsaved_message(saved, true));
      }
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
          if (st.state == State::kFailed)
            errors[id] = st.last_error.empty() ? "failed" : st.last_error;
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
        app->monitor->restart([countdown] { countdown->one(); });
      }
      countdown->one();
      return;
    }
    const bool erase = command == Command::kDelete;
    stop_apps(*apps, false, [answer, erase](std::size_t) { answer(erase, {}); });
    // Wanted down from now on, also for the next worker if this one dies
    // before the stop is over: it takes the run over and finishes the stop.
    (void)persist();
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
    for (App* app : registry_.all()) listed.apps.push_back(info_of(*app));
    listed.warnings = std::exchange(load_warnings_, {});  // said once
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
      fail(session, request, ErrorCode::kBadRequest,
           request.cmd + ": expected one app, not \"all\"");
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
    log_followers_.add(session, request.id,
                       {followed_ids(args.targets, *apps), want_out, want_err});
  }

  void events(const protocol::EventsArgs& args, const protocol::Request& request,
              const std::shared_ptr<Session>& session) {
    auto apps = optional_targets(args.targets, request, session);
    if (!apps) return;
    event_followers_.add(session, request.id, {followed_ids(args.targets, *apps)});
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
    for (App* app : registry_.all()) {
      const LogOptions& l = app->spec.monitor.logs;
      if (!l.out_path.empty()) removed += remove_rotated_logs(l.out_path);
      if (!l.err_path.empty() && l.err_path != l.out_path)
        removed += remove_rotated_logs(l.err_path);
    }
    log_->info("cleanlogs removed {} rotated log files", removed);
    reply(session, request, protocol::CleanlogsReply{removed});
  }

  // --- config files -----------------------------------------------------

  // What apply() did: the reply to `apply`.
  using ApplyReport = protocol::ApplyReply;

  // The apps as the reload planner sees them, in id order.
  std::vector<CurrentApp> current_apps() {
    std::vector<CurrentApp> current;
    for (App* app : registry_.all()) {
      const State state = app->monitor->status().state;
      const bool up =
          state == State::kStarting || state == State::kRunning || state == State::kBackoff;
      current.push_back({app->id, app->spec, app->source, up});
    }
    return current;
  }

  // What apply() would do, done nothing (--dry-run). An app it would start
  // again is reported unchanged, as --dry-run always has.
  static ApplyReport planned_report(const ReloadPlan& plan) {
    ApplyReport report;
    for (const PlannedApp& p : plan.apps) {
      const std::string& name = p.spec.name;
      switch (p.action) {
        case PlannedAction::kStart:
          report.started.emplace_back(name);
          break;
        case PlannedAction::kAddStopped:
          report.added.emplace_back(name);
          break;
        case PlannedAction::kStartAgain:
        case PlannedAction::kUnchanged:
          report.unchanged.emplace_back(name);
          break;
        case PlannedAction::kRestart:
          report.restarted.emplace_back(name);
          report.changes.emplace_back(name, p.changes);
          break;
      }
    }
    for (const PlannedDelete& d : plan.deletes) report.deleted.emplace_back(d.name);
    return report;
  }

  // A refused plan as an Error of the kind its reason means.
  static Error error_of(const PlanError& e) {
    switch (e.kind) {
      case PlanError::Kind::kUnknownOnly:
        return Error{ErrorKind::kNotFound, e.message};
      case PlanError::Kind::kInvalidApp:
        return Error{ErrorKind::kInvalidArgument, e.message};
      case PlanError::Kind::kNameTaken:
        break;
    }
    return Error{ErrorKind::kExists, e.message};
  }

  // Re-reads a remembered file and applies it as `sempre reload` would. A
  // file with any error changes nothing.
  void reload_source(const std::string& path, const std::string& why) {
    const SavedSource* source = sources_.find(path);
    if (source == nullptr) return;
    const AppsFile file = load_apps_file(path, source->env, paths_.home + "/config.toml");
    if (!file.ok()) {
      log_->error("{} {}, but has errors; nothing changed:", path, why);
      for (const ConfigError& e : file.errors) log_->error("  {}", e.str());
      return;
    }
    log_->info("reloading {} ({})", path, why);
    apply(path, file.apps, /*reload=*/true, {}, source->env, source->watch, /*dry_run=*/false,
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
    if (const SavedSource* known = sources_.find(path); known != nullptr && !args.update_env) {
      AppsFile again = load_apps_file(path, known->env, paths_.home + "/config.toml");
      if (again.ok()) {
        apps = std::move(again.apps);
        env = known->env;
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
  // anything (plan_reload decides, this carries the plan out). `done` gets
  // what was done.
  void apply(const std::string& path, std::vector<AppSpec> specs, bool reload,
             const std::vector<std::string>& only, std::vector<std::string> env, bool watch,
             bool dry_run, std::function<void(Result<ApplyReport>)> done) {
    for (AppSpec& spec : specs) fill_log_defaults(spec);
    ReloadPlan plan = plan_reload(path, current_apps(), std::move(specs),
                                  reload ? ApplyMode::kReload : ApplyMode::kStart, only);
    if (plan.error) return done(error_of(*plan.error));
    if (dry_run) return done(planned_report(plan));
    // What a file starts must be saved before it runs: nothing is done when
    // nothing can be saved.
    if (Status saved = persist(); !saved) {
      return done(Error{ErrorKind::kInternal, unsaved_message(saved, false), 0});
    }
    sources_.remember(path, std::move(env), watch);

    auto report = std::make_shared<ApplyReport>();
    std::vector<PlannedApp*> restarts;
    for (PlannedApp& p : plan.apps) {
      const std::string name = p.spec.name;
      if (p.action == PlannedAction::kStart || p.action == PlannedAction::kAddStopped) {
        const bool autostart = p.action == PlannedAction::kStart;
        App& app = add_app(std::move(p.spec), autostart ? Wanted::kUp : Wanted::kDown);
        app.source = path;
        if (!autostart) {
          report->added.emplace_back(name);
        } else if (auto st = start_app(app); !st) {
          report->failed.push_back({name, st.error().message});
          erase_app(app.id, /*failed_start=*/true);
        } else {
          report->started.emplace_back(name);
        }
      } else if (p.action == PlannedAction::kRestart) {
        restarts.push_back(&p);
      } else if (App* existing = find_id(p.id)) {
        if (p.adopt) existing->source = path;
        if (p.action == PlannedAction::kUnchanged) {
          report->unchanged.emplace_back(name);
        } else if (auto st = start_app(*existing); !st) {
          report->failed.push_back({name, st.error().message});
        } else {
          report->started.emplace_back(name);
        }
      }
    }

    std::weak_ptr<bool> alive = alive_;
    auto countdown = std::make_shared<Countdown>();
    countdown->left = plan.deletes.size() + restarts.size() + 1;
    countdown->done = [this, alive, report, done] {
      if (alive.expired()) return;
      if (Status saved = persist(); !saved) {
        return done(Error{ErrorKind::kInternal, unsaved_message(saved, true), 0});
      }
      done(*report);
    };
    for (const PlannedDelete& d : plan.deletes) {
      const std::uint64_t id = d.id;
      App* app = find_id(id);
      report->deleted.emplace_back(d.name);
      app->monitor->stop([this, alive, id, countdown] {
        if (alive.expired()) return;
        erase_app(id);
        countdown->one();
      });
    }
    for (PlannedApp* p : restarts) {
      const std::uint64_t id = p->id;
      App* app = find_id(id);
      report->restarted.emplace_back(p->spec.name);
      report->changes.emplace_back(p->spec.name, p->changes);
      // It stays wanted as it was while the old Monitor stops, and the new
      // one takes that over.
      auto replace = [this, alive, id, spec = std::move(p->spec), report, countdown] {
        if (alive.expired()) return;
        if (App* a = find_id(id)) {
          // The old Monitor finished its stop; it is not on the stack here.
          auto old = std::make_shared<RetiredMonitor>();
          old->run_keeper = std::move(a->run_keeper);
          old->monitor = std::move(a->monitor);
          const MonitorStatus ended = old->monitor->status();
          a->restarts_before += ended.restarts + 1;  // the reload's own restart
          a->out_dropped_before += ended.out_dropped;
          a->err_dropped_before += ended.err_dropped;
          a->spec = spec;
          make_monitor(*a, old->monitor->status().wanted_up ? Wanted::kUp : Wanted::kDown,
                       /*resume=*/true);
          boost::asio::post(executor_, [gone = std::move(old)] {});
          if (auto st = start_app(*a); !st) {
            report->failed.push_back({a->spec.name, st.error().message});
          }
        }
        countdown->one();
      };
      app->monitor->stop_keep_wanted(std::move(replace));
    }
    countdown->one();
  }

  void dump(const protocol::Empty&, const protocol::Request& request,
            const std::shared_ptr<Session>& session) {
    protocol::DumpReply dumped;
    for (App* app : registry_.all())
      dumped.apps.push_back({app->spec, wanted_up(*app), app->source});
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

  // The worker hands every app over to the next one (the binary on disk):
  // nothing is stopped.
  void reexec_request(const protocol::Empty&, const protocol::Request& request,
                      const std::shared_ptr<Session>& session) {
    if (keeper_ == nullptr || keeper_->keeper_pid() == 0 || !on_reexec_) {
      return fail(session, request, ErrorCode::kInternal,
                  "this daemon runs without a keeper (sempred --no-keeper, or its keeper was "
                  "killed): it cannot be replaced without stopping its apps; use `sempre daemon "
                  "stop` and `sempre daemon start`");
    }
    if (reexec_pending_) {
      return fail(session, request, ErrorCode::kInternal, "the daemon is being replaced already");
    }
    if (auto st = persist(); !st) {
      return fail(session, request, ErrorCode::kInternal,
                  "could not save state: " + st.error().message);
    }
    reexec_pending_ = true;
    log_->info("reexec requested: handing {} app(s) over to the next worker", registry_.size());
    reply(session, request, protocol::ReexecReply{::getpid(), registry_.size()});
    on_reexec_();
  }

  void stop_everything(const protocol::Request& request, const std::shared_ptr<Session>& session,
                       bool forget) {
    // Processes of an earlier daemon still being stopped are waited for too.
    for (App* app : registry_.all()) {
      if (app->stale_pid == 0) continue;
      std::weak_ptr<bool> alive = alive_;
      app->after_stale.push_back([this, alive, request, session, forget] {
        if (!alive.expired()) stop_everything(request, session, forget);
      });
      return;
    }
    log_->info("{} requested: stopping every app", request.cmd);
    stopping_everything_ = true;
    std::weak_ptr<bool> alive = alive_;
    stop_all(/*keep_wanted=*/!forget, [this, alive, request, session](std::size_t n) {
      if (alive.expired()) return;
      if (Status saved = persist(); !saved) {
        // The daemon goes all the same; the next one restores what was saved.
        fail(session, request, ErrorCode::kInternal,
             could_not_save(saved) +
                 "; every app is stopped, but the next daemon starts the apps it last recorded "
                 "as wanted up");
      } else {
        reply(session, request, protocol::StoppedReply{n});
      }
      if (on_kill_) on_kill_();
    });
  }

  boost::asio::any_io_executor executor_;
  HomePaths paths_;
  std::shared_ptr<spdlog::logger> log_;
  MonitorSeams seams_;
  KeeperLink* keeper_ = nullptr;
  std::function<void()> on_reexec_;
  bool reexec_pending_ = false;
  std::uint64_t next_keep_suffix_ = 1;
  std::unique_ptr<Clock> own_clock_;  // when the seams bring none
  Clock& clock_;
  ConfigSources sources_;
  std::chrono::steady_clock::time_point started_;
  AppRegistry registry_;
  Subscriptions log_followers_;
  Subscriptions event_followers_;
  bool persist_pending_ = false;
  // While state.json cannot be saved: the next try.
  bool save_failing_ = false;
  // kill or daemon stop under way: nothing starts any more.
  bool stopping_everything_ = false;
  std::unique_ptr<Timer> save_retry_;
  // What restore() could not restore, until a list has said it.
  std::vector<std::string> load_warnings_;
  std::function<void()> on_kill_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

AppManager::AppManager(boost::asio::any_io_executor executor, HomePaths paths,
                       std::shared_ptr<spdlog::logger> log, MonitorSeams seams)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(paths), std::move(log), seams)) {}
AppManager::~AppManager() = default;
void AppManager::restore() { impl_->restore(); }
void AppManager::set_keeper(KeeperLink* keeper) { impl_->set_keeper(keeper); }
void AppManager::set_on_reexec(std::function<void()> on_reexec) {
  impl_->set_on_reexec(std::move(on_reexec));
}
void AppManager::release_all() { impl_->release_all(); }
void AppManager::handle(const protocol::Request& request, const std::shared_ptr<Session>& session) {
  impl_->handle(request, session);
}
void AppManager::shutdown(std::function<void()> done) { impl_->shutdown(std::move(done)); }
void AppManager::reload_sources() { impl_->reload_sources(); }
void AppManager::set_on_kill(std::function<void()> on_kill) {
  impl_->set_on_kill(std::move(on_kill));
}

}  // namespace sempre
