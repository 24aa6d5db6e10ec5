#include "sempre/monitor.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <csignal>
#include <deque>
#include <filesystem>

#include "lifecycle.hpp"
#include "log_writer.hpp"
#include "os.hpp"
#include "output_pipe.hpp"
#include "ready_probe.hpp"
#include "restart_policy.hpp"
#include "sempre/file_watcher.hpp"
#include "sempre/proc_stats.hpp"
#include "sempre/program.hpp"

namespace sempre {
namespace {

// After SIGKILL, how long to wait for the group before moving on: only a
// process stuck in the kernel (D state) can outlive SIGKILL that long.
constexpr Millis kKillGrace{5000};
// After the group is gone, how long its pipes may stay open before the run
// is declared over anyway; a process that left the group (setsid) may hold
// them. Such a pipe is still read to its end afterwards.
constexpr Millis kDrainLimit{1000};

Millis since(Clock::TimePoint from, Clock::TimePoint to) {
  return std::chrono::duration_cast<Millis>(to - from);
}

// A set of states, one bit per state.
using StateSet = unsigned;
constexpr StateSet in(State state) { return 1U << static_cast<unsigned>(state); }
// No process of the app is left.
constexpr StateSet kChildGone = in(State::kStopped) | in(State::kExited) | in(State::kFailed);
// A spawn asked for has happened, or cannot now.
constexpr StateSet kSpawnSettled = kChildGone | in(State::kStarting) | in(State::kBackoff);

Status write_pid_file(const std::string& path, pid_t pid) {
  Status st = os::write_file_atomic(path, std::to_string(pid) + "\n", 0644);
  if (!st) return Error{st.error().kind, "pid file: " + st.error().message, st.error().os_error};
  return {};
}

// REQUIRES validate(options), so the check parses.
ReadyCheck ready_check_of(const MonitorOptions& options) {
  auto check = parse_ready_check(options.ready);
  return check.ok() ? *check : ReadyCheck{};
}

}  // namespace

class Monitor::Impl {
 public:
  Impl(boost::asio::any_io_executor executor, MonitorOptions options, Wanted wanted, Seams seams)
      : executor_(std::move(executor)),
        options_(std::move(options)),
        policy_(options_),
        ready_check_(ready_check_of(options_)),
        buffer_(make_read_buffer()),
        alive_(std::make_shared<bool>(true)) {
    wanted_up_ = wanted == Wanted::kUp;
    if (seams.clock != nullptr) {
      clock_ = seams.clock;
    } else {
      own_clock_ = make_asio_clock(executor_);
      clock_ = own_clock_.get();
    }
    if (seams.launcher != nullptr) {
      launcher_ = seams.launcher;
    } else {
      own_launcher_ = make_posix_launcher(executor_);
      launcher_ = own_launcher_.get();
    }
    keeper_ = seams.keeper;
    cgroup_parent_ = seams.cgroup_parent;
  }

  ~Impl() {
    alive_.reset();
    if (run_ && !options_.pid_file.empty()) ::unlink(options_.pid_file.c_str());
    if (run_ && keeper_ != nullptr) keeper_->forget_run();
    // ~ChildProcess kills and reaps a child that still runs.
  }

  // --- commands -----------------------------------------------------------

  Status start() {
    if (auto st = ensure_watcher(); !st) return st;
    const auto attempts = spawn_attempts_;
    // Never called from inside an action (event handlers run between
    // actions), so the spawn has happened, or failed, once fire returns.
    fire({Trigger::kStart, "start requested"});
    if (spawn_attempts_ != attempts && state_ == State::kFailed && last_spawn_error_) {
      return *last_spawn_error_;
    }
    return {};
  }

  Status adopt(Adoption adoption) {
    os::UniqueFd out(adoption.stdout_fd);
    os::UniqueFd err(adoption.stderr_fd);
    os::UniqueFd notify(adoption.notify_fd);
    if (run_ || state_ != State::kStopped) {
      return Error{ErrorKind::kInvalidArgument, "cannot adopt: a run is under way already", 0};
    }
    if (auto st = open_logs(); !st) return st;
    auto child = launcher_->adopt(adoption.pid, adoption.start_time,
                                  std::move(adoption.exit_status), cgroup_parent_);
    if (!child) return child.error();
    auto run = std::make_unique<Run>();
    run->child = std::move(*child);
    run->pid = adoption.pid;
    run->started = clock_->now() - adoption.uptime;
    // Ended while nobody watched: its end is on its way (async_wait); it
    // is not shown as running meanwhile.
    const Result<os::ProcStat> stat = os::read_proc_stat(adoption.pid);
    run->gone = !stat || stat->starttime != adoption.start_time || stat->state == 'Z';
    run->adopted_starting = !adoption.ready;
    if (run->adopted_starting && notify && ready_check_.kind == ReadyCheck::Kind::kNotify) {
      Run* raw = run.get();
      auto probe = adopt_notify_probe(executor_, notify.release(), [this, raw] {
        if (run_.get() == raw) fire({Trigger::kReady});
      });
      if (probe) run->probe = std::move(*probe);
    }
    run->out_pipe = out ? add_pipe(OutputStream::kStdout, out.release()) : 0;
    run->err_pipe = err ? add_pipe(OutputStream::kStderr, err.release()) : 0;
    adoption_ = std::move(run);
    if (auto st = ensure_watcher(); !st) last_error_ = st.error().message;
    fire({Trigger::kAdopt, "adopted"});
    return {};
  }

  void release() {
    for (auto& [id, pipe] : pipes_) {
      const bool out = run_ && run_->out_pipe == id;
      const bool err = run_ && run_->err_pipe == id;
      const std::string partial = pipe->take_partial();
      if (!partial.empty() && (out || err)) {
        (void)write_log(out ? OutputStream::kStdout : OutputStream::kStderr, partial);
      }
    }
    pipes_.clear();
    if (run_) {
      run_->child->release();
      run_.reset();
    }
    adoption_.reset();
    backoff_timer_.reset();
    watcher_.reset();
    keeper_ = nullptr;
    state_ = State::kStopped;
  }

  void stop(Trigger trigger, Done done) {
    fire({trigger, "stop requested", Waiter{kChildGone, std::move(done)}});
  }

  void restart(Done done) {
    if (auto st = ensure_watcher(); !st) last_error_ = st.error().message;
    fire({Trigger::kRestart, "restart requested", Waiter{kSpawnSettled, std::move(done)}});
  }

  Status flush_logs() {
    Status result;
    auto flush = [&result](const std::shared_ptr<LogWriter>& writer, const std::string& path) {
      Status st = writer ? writer->truncate() : truncate_log_file(path);
      if (!st && result) result = std::move(st);
    };
    flush(out_writer_, options_.logs.out_path);
    if (options_.logs.err_path != options_.logs.out_path)
      flush(err_writer_, options_.logs.err_path);
    return result;
  }

  Status signal(int sig) {
    if (!run_ || run_->main_exited) {
      return Error{ErrorKind::kNotFound, "no process is running", ESRCH};
    }
    if (!run_->child->signal_group(sig)) {
      return Error{ErrorKind::kNotFound, "no process is running", ESRCH};
    }
    return {};
  }

  MonitorStatus status() const {
    MonitorStatus s;
    s.state = state_;
    s.wanted_up = wanted_up_;
    if (run_ && !run_->main_exited && !run_->gone) {
      s.pid = run_->pid;
      s.uptime = since(run_->started, clock_->now());
    }
    if (run_) s.cgroup = run_->child->cgroup();
    s.restarts = restarts_;
    s.crash_restarts = policy_.consecutive_crashes();
    s.last_exit = last_exit_;
    s.last_error = last_error_;
    s.out_log = out_writer_ ? out_writer_->path() : options_.logs.out_path;
    s.err_log = err_writer_ ? err_writer_->path() : options_.logs.err_path;
    s.out_dropped = out_dropped_;
    s.err_dropped = err_dropped_;
    return s;
  }

  MonitorUsage usage() {
    MonitorUsage u;
    if (!run_ || run_->main_exited) return u;
    const GroupUsage g = set_usage(ProcessSet{run_->pid, run_->child->cgroup(), false});
    u.cpu_ms = g.cpu_ms;
    u.rss_bytes = g.rss_bytes;
    u.processes = g.processes;
    const auto now = clock_->now();
    if (!usage_sample_ || usage_sample_->pid != run_->pid) {
      usage_sample_ = UsageSample{run_->pid, run_->started, 0};
    }
    const auto wall = since(usage_sample_->at, now).count();
    if (wall > 0 && g.cpu_ms >= usage_sample_->cpu_ms) {
      u.cpu_percent =
          100.0 * static_cast<double>(g.cpu_ms - usage_sample_->cpu_ms) / static_cast<double>(wall);
    }
    usage_sample_ = UsageSample{run_->pid, now, g.cpu_ms};
    return u;
  }

  const MonitorOptions& options() const { return options_; }

  HandlerId on_event(std::function<void(const Event&)> handler) {
    const HandlerId id = ++last_handler_id_;
    event_handlers_.emplace_back(id, std::make_shared<EventHandler>(std::move(handler)));
    return id;
  }

  HandlerId on_output(std::function<void(OutputStream, std::string_view)> handler) {
    const HandlerId id = ++last_handler_id_;
    output_handlers_.emplace_back(id, std::make_shared<OutputHandler>(std::move(handler)));
    return id;
  }

  void remove_handler(HandlerId id) {
    auto match = [id](const auto& entry) { return entry.first == id; };
    std::erase_if(event_handlers_, match);
    std::erase_if(output_handlers_, match);
  }

 private:
  using EventHandler = std::function<void(const Event&)>;
  using OutputHandler = std::function<void(OutputStream, std::string_view)>;

  // One spawned child, from spawn until it and its group are gone and its
  // output has been read.
  struct Run {
    std::unique_ptr<ChildProcess> child;
    pid_t pid = 0;
    Clock::TimePoint started;
    bool main_exited = false;
    bool gone = false;              // adopted after its main process ended
    bool adopted_starting = false;  // adopted before it was ready
    ExitStatus status;
    Millis uptime{0};
    bool kill_sent = false;
    bool group_empty = false;
    bool drain_expired = false;
    std::unique_ptr<Timer> uptime_timer;
    std::unique_ptr<Timer> kill_timer;
    std::unique_ptr<Timer> drain_timer;
    std::uint64_t out_pipe = 0;  // ids in pipes_, 0 when at EOF
    std::uint64_t err_pipe = 0;
    LaunchRequest request;              // how it was spawned (for an exec readiness check)
    std::unique_ptr<ReadyProbe> probe;  // while it is starting, with --ready
  };

  struct UsageSample {
    pid_t pid;
    Clock::TimePoint at;
    std::uint64_t cpu_ms;
  };

  // The callback of a stop() or restart(): it runs (posted to the executor)
  // once the app is in one of `states`.
  struct Waiter {
    StateSet states = 0;
    Done done;
  };

  // One input of the state machine: a trigger, why it happened (events
  // report it), and who waits for its outcome.
  struct Input {
    Trigger trigger;
    std::string reason;
    Waiter waiter;
  };

  // --- the state machine --------------------------------------------------

  // Every input becomes a trigger here, and is handled at once unless an
  // action is under way (then it is next), so actions never interleave.
  // Events raised by an action reach the handlers once it is over, in the
  // order they were raised; a command a handler gives runs at once and its
  // events are delivered after those already waiting.
  void fire(Input input) {
    inputs_.push_back(std::move(input));
    if (acting_) return;
    while (!inputs_.empty()) {
      Input next = std::move(inputs_.front());
      inputs_.pop_front();
      handle(next);
      deliver_events();
    }
  }

  void handle(Input& input) {
    if (const std::optional<bool> wanted = wanted_after(input.trigger)) wanted_up_ = *wanted;
    if (input.waiter.done) waiters_.push_back(std::move(input.waiter));
    acting_ = true;
    act(transition(state_, input.trigger), input);
    acting_ = false;
    // A waiter content with the state the app already was in.
    release_waiters();
  }

  void act(Action action, const Input& input) {
    const std::string& reason = input.reason;
    switch (action) {
      case Action::kNone:
        return;
      case Action::kStartFresh:
        backoff_timer_.reset();
        policy_.reset();
        if (input.trigger == Trigger::kRestart) {
          ++restarts_;
          emit_restart(0, Millis{0}, reason);
        }
        spawn();
        return;
      case Action::kSpawn:
        ++restarts_;
        spawn();
        return;
      case Action::kKill:
        start_after_stop_ = false;
        watcher_.reset();
        set_state(State::kStopping);
        begin_kill();
        return;
      case Action::kKillThenStart:
        start_after_stop_ = true;
        restart_reason_ = reason;
        set_state(State::kStopping);
        begin_kill();
        return;
      case Action::kStartAfterStop:
        start_after_stop_ = true;
        restart_reason_ = reason;
        return;
      case Action::kStayDown:
        start_after_stop_ = false;
        watcher_.reset();
        return;
      case Action::kCancelRestart:
      case Action::kForget:
        backoff_timer_.reset();
        watcher_.reset();
        set_state(State::kStopped);
        emit(make_event(EventType::kStop, reason));
        return;
      case Action::kMarkReady:
        // With a readiness check, lasting min-uptime only ends the crash loop.
        if (input.trigger == Trigger::kUptimeReached &&
            ready_check_.kind != ReadyCheck::Kind::kNone) {
          return;
        }
        if (run_) run_->probe.reset();
        set_state(State::kRunning);
        if (run_ && keeper_ != nullptr) keeper_->keep_ready(run_->pid);
        emit(make_event(EventType::kReady));
        return;
      case Action::kSpawnFailure:
        on_spawn_failure(reason);
        return;
      case Action::kApplyPolicy:
        apply_policy();
        return;
      case Action::kFinishStop:
        finish_stop(reason);
        return;
      case Action::kEscalate:
        escalate();
        return;
      case Action::kAbandonGroup:
        if (run_) run_->group_empty = true;
        maybe_finish();
        return;
      case Action::kStopDraining:
        if (run_) run_->drain_expired = true;
        maybe_finish();
        return;
      case Action::kTakeOver:
        take_over();
        return;
    }
  }

  // The one place where the state changes, and where waiters are released.
  void set_state(State state) {
    state_ = state;
    release_waiters();
  }

  void release_waiters() {
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if ((it->states & in(state_)) != 0) {
        boost::asio::post(executor_, std::move(it->done));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void spawn() {
    ++spawn_attempts_;
    last_spawn_error_.reset();
    set_state(State::kStarting);
    auto launched = launch();
    if (!launched.ok()) {
      last_spawn_error_ = launched.error();
      last_error_ = launched.error().message;
      fire({Trigger::kSpawnFailed, launched.error().message});
      return;
    }
    run_ = std::move(*launched);
    last_error_.clear();
    Event started = make_event(EventType::kStart);
    if (!options_.pid_file.empty()) {
      if (auto st = write_pid_file(options_.pid_file, run_->pid); !st) {
        last_error_ = st.error().message;
      }
    }
    std::weak_ptr<bool> alive = alive_;
    Run* run = run_.get();
    run->child->async_wait([this, alive, run](ExitStatus status) {
      if (alive.expired()) return;
      on_main_exit(run, status);
    });
    start_probe(*run);
    if (options_.min_uptime.count() > 0) arm_uptime_timer(*run, options_.min_uptime);
    emit(started);
    if (options_.min_uptime.count() == 0) fire({Trigger::kUptimeReached});
  }

  // The run given to adopt() becomes the current one: no start event (it
  // started under the earlier supervisor); running, or, if it was still
  // starting, starting until its readiness check (again) or the rest of
  // its min-uptime says it is up.
  void take_over() {
    if (!adoption_) return;
    run_ = std::move(adoption_);
    Run* run = run_.get();
    // A notify check goes on only on the socket the app was given.
    const bool resume = run->adopted_starting && !run->gone &&
                        (ready_check_.kind != ReadyCheck::Kind::kNotify || run->probe);
    set_state(resume ? State::kStarting : State::kRunning);
    if (resume) {
      start_probe(*run);
      const Millis left = options_.min_uptime - since(run->started, clock_->now());
      if (left.count() > 0) {
        arm_uptime_timer(*run, left);
      } else {
        std::weak_ptr<bool> alive = alive_;
        boost::asio::post(executor_, [this, alive, run] {
          if (!alive.expired() && run_.get() == run) fire({Trigger::kUptimeReached});
        });
      }
    }
    if (!options_.pid_file.empty()) {
      if (auto st = write_pid_file(options_.pid_file, run->pid); !st)
        last_error_ = st.error().message;
    }
    std::weak_ptr<bool> alive = alive_;
    run->child->async_wait([this, alive, run](ExitStatus status) {
      if (alive.expired()) return;
      on_main_exit(run, status);
    });
  }

  // min-uptime reached for `run` after `after`, if it is still the current run.
  void arm_uptime_timer(Run& run, Millis after) {
    Run* raw = &run;
    run.uptime_timer = clock_->start_timer(after, [this, raw] {
      if (run_.get() == raw) fire({Trigger::kUptimeReached});
    });
  }

  // Starts the tcp or exec readiness check of a run just spawned (notify's
  // socket exists before the spawn: the child needs its address).
  void start_probe(Run& run) {
    Run* raw = &run;
    auto ready = [this, raw] {
      if (run_.get() == raw) fire({Trigger::kReady});
    };
    if (ready_check_.kind == ReadyCheck::Kind::kTcp) {
      run.probe = make_tcp_probe(executor_, *clock_, ready_check_.port, ready);
    } else if (ready_check_.kind == ReadyCheck::Kind::kExec) {
      run.probe = make_exec_probe(*clock_, *launcher_, run.request, ready_check_.command, ready);
    }
  }

  // python, python3, python3.11 ...
  static bool is_python(const std::string& exe) {
    const std::string base = std::filesystem::path(exe).filename().string();
    return base.rfind("python", 0) == 0 &&
           base.find_first_not_of("0123456789.", 6) == std::string::npos;
  }

  Result<std::unique_ptr<Run>> launch() {
    if (auto st = open_logs(); !st) return st.error();
    auto run = std::make_unique<Run>();
    std::vector<std::string> env = options_.env.empty() ? current_environment() : options_.env;
    if (ready_check_.kind == ReadyCheck::Kind::kNotify) {
      std::string entry;
      Run* raw = run.get();
      auto probe = make_notify_probe(executor_, entry, [this, raw] {
        if (run_.get() == raw) fire({Trigger::kReady});
      });
      if (!probe) return probe.error();
      run->probe = std::move(*probe);
      std::erase_if(env, [](const std::string& e) { return e.rfind("NOTIFY_SOCKET=", 0) == 0; });
      env.push_back(entry);
    }
    auto argv = resolve_command(options_.argv, options_.interpreter, env, options_.cwd);
    if (!argv) return argv.error();
    // Python buffers stdout when it is a pipe, so a log would show nothing
    // until 8 KiB piled up, and lose it all on a crash.
    if (is_python(argv->front()) && std::none_of(env.begin(), env.end(), [](const std::string& e) {
          return e.rfind("PYTHONUNBUFFERED=", 0) == 0;
        })) {
      env.emplace_back("PYTHONUNBUFFERED=1");
    }
    auto creds = resolve_credentials(options_.user, options_.group);
    if (!creds) return creds.error();

    auto out = os::make_pipe();
    if (!out) return out.error();
    auto err = os::make_pipe();
    if (!err) return err.error();

    LaunchRequest request;
    request.argv = std::move(*argv);
    request.env = std::move(env);
    request.cwd = options_.cwd;
    if (*creds) {
      request.uid = (*creds)->uid;
      request.gid = (*creds)->gid;
      request.groups = (*creds)->groups;
    }
    request.umask = options_.umask;
    request.nice = options_.nice;
    request.limit_nofile = options_.limit_nofile;
    request.stdout_fd = out->write.get();
    request.stderr_fd = err->write.get();
    request.cgroup_parent = cgroup_parent_;
    if (keeper_ != nullptr) {
      keeper_->keep_pipes_and_notify(out->read.get(), err->read.get(),
                                     run->probe ? run->probe->notify_fd() : -1);
    }
    auto child = launcher_->launch(request);
    // The child holds its copies; ours would keep the pipes from ever ending.
    out->write.reset();
    err->write.reset();
    if (!child) {
      if (keeper_ != nullptr) keeper_->forget_run();
      return child.error();
    }
    if (keeper_ != nullptr) keeper_->keep_pid((*child)->pid());

    run->request = request;
    run->request.stdout_fd = -1;
    run->request.stderr_fd = -1;
    run->child = std::move(*child);
    run->pid = run->child->pid();
    run->started = clock_->now();
    run->out_pipe = add_pipe(OutputStream::kStdout, out->read.release());
    run->err_pipe = add_pipe(OutputStream::kStderr, err->read.release());
    return run;
  }

  void on_spawn_failure(const std::string& reason) {
    const Error error = last_spawn_error_.value_or(Error{ErrorKind::kSpawnFailed, reason});
    if (error.kind == ErrorKind::kTransient) {
      // Out of processes or memory: the system may recover, so this is
      // retried like a crash, with backoff.
      schedule(policy_.on_exit(ExitStatus{false, 127}, Millis{0}));
      return;
    }
    set_state(State::kFailed);
    Event failed = make_event(EventType::kFailed);
    failed.reason = error.message;
    emit(failed);
  }

  // --- the end of a run ---------------------------------------------------

  void on_main_exit(Run* run, ExitStatus status) {
    run->main_exited = true;
    run->status = status;
    if (keeper_ != nullptr) keeper_->keep_exit(run->pid, status);
    run->uptime = since(run->started, clock_->now());
    run->uptime_timer.reset();
    run->probe.reset();
    // What is left of the group gets the stop treatment before any restart,
    // so a leftover worker never holds the port or the files of the next run.
    begin_kill();
    std::weak_ptr<bool> alive = alive_;
    run->child->async_wait_group_empty([this, alive, run] {
      if (alive.expired() || run_.get() != run) return;
      run->group_empty = true;
      run->kill_timer.reset();
      maybe_finish();
    });
  }

  // The kill-signal to the group, and kill-timeout until it is escalated.
  void begin_kill() {
    Run* run = run_.get();
    if (run == nullptr || run->kill_sent) return;
    run->kill_sent = true;
    const bool anyone = run->child->signal_group(options_.kill_signal);
    if (!anyone && run->main_exited) return;
    run->kill_timer = clock_->start_timer(options_.kill_timeout, [this, run] {
      if (run_.get() == run) fire({Trigger::kKillTimeout, "kill-timeout passed"});
    });
  }

  void escalate() {
    Run* run = run_.get();
    if (run == nullptr) return;
    run->child->signal_group(SIGKILL);
    run->kill_timer = clock_->start_timer(kKillGrace, [this, run] {
      if (run_.get() == run) fire({Trigger::kKillGraceElapsed, "the group outlived SIGKILL"});
    });
  }

  void maybe_finish() {
    Run* run = run_.get();
    if (run == nullptr || !run->main_exited || !run->group_empty) return;
    const bool drained = run->out_pipe == 0 && run->err_pipe == 0;
    if (!drained && !run->drain_expired) {
      if (!run->drain_timer) {
        run->drain_timer = clock_->start_timer(kDrainLimit, [this, run] {
          if (run_.get() == run) fire({Trigger::kDrainElapsed, "output still open"});
        });
      }
      return;
    }
    fire({Trigger::kExited});
  }

  // Ends run_ and returns its exit event. The Run is destroyed later, from
  // the executor: this may be running inside one of its own callbacks.
  Event retire_run() {
    Event exited = make_event(EventType::kExit);
    std::shared_ptr<Run> run(std::move(run_));
    exited.pid = run->pid;
    exited.exit = run->status;
    exited.uptime = run->uptime;
    last_exit_ = run->status;
    run->uptime_timer.reset();
    run->kill_timer.reset();
    run->drain_timer.reset();
    run->probe.reset();
    if (!options_.pid_file.empty()) ::unlink(options_.pid_file.c_str());
    if (keeper_ != nullptr) keeper_->forget_run();
    boost::asio::post(executor_, [run] {});
    return exited;
  }

  void apply_policy() {
    const Millis uptime = run_->uptime;
    const ExitStatus status = run_->status;
    const Event exited = retire_run();
    const RestartDecision decision = policy_.on_exit(status, uptime);
    if (decision.kind == RestartDecision::Kind::kRestart) {
      set_state(State::kBackoff);
      emit(exited);
      schedule(decision);
      return;
    }
    if (decision.kind == RestartDecision::Kind::kFail) {
      set_state(State::kFailed);
      last_error_ = decision.reason;
      emit(exited);
      Event failed = make_event(EventType::kFailed);
      failed.reason = decision.reason;
      emit(failed);
      return;
    }
    set_state(State::kExited);
    Event done = exited;
    done.reason = decision.reason;
    emit(done);
  }

  void schedule(const RestartDecision& decision) {
    if (decision.kind == RestartDecision::Kind::kFail) {
      set_state(State::kFailed);
      last_error_ = decision.reason;
      Event failed = make_event(EventType::kFailed);
      failed.reason = decision.reason;
      emit(failed);
      return;
    }
    set_state(State::kBackoff);
    emit_restart(decision.attempt, decision.delay);
    backoff_timer_ = clock_->start_timer(decision.delay, [this] {
      backoff_timer_.reset();
      fire({Trigger::kBackoffElapsed});
    });
  }

  void finish_stop(const std::string& reason) {
    const Event exited = retire_run();
    if (start_after_stop_) {
      start_after_stop_ = false;
      emit(exited);
      policy_.reset();
      ++restarts_;
      emit_restart(0, Millis{0}, restart_reason_);
      spawn();
      return;
    }
    set_state(State::kStopped);
    emit(exited);
    Event stopped = make_event(EventType::kStop, reason);
    stopped.pid = exited.pid;
    emit(stopped);
  }

  // --- output -------------------------------------------------------------

  Status open_logs() {
    const LogOptions& logs = options_.logs;
    auto open = [&](const std::string& path) -> Result<std::shared_ptr<LogWriter>> {
      LogWriter::Options o;
      o.path = path;
      o.append = logs.append;
      o.max_size = logs.max_size;
      o.keep = logs.keep;
      o.timestamps = logs.timestamps;
      auto writer = LogWriter::open(o, *clock_);
      if (!writer) return writer.error();
      std::shared_ptr<LogWriter> shared(std::move(*writer));
      shared->set_on_rotate([this](const std::string& rotated) {
        Event e = make_event(EventType::kRotate);
        e.path = rotated;
        emit(e);
      });
      return shared;
    };
    if (!out_writer_ && !logs.out_path.empty()) {
      auto w = open(logs.out_path);
      if (!w) return w.error();
      out_writer_ = *w;
    }
    if (!err_writer_ && !logs.err_path.empty()) {
      if (logs.err_path == logs.out_path) {
        err_writer_ = out_writer_;
      } else {
        auto w = open(logs.err_path);
        if (!w) return w.error();
        err_writer_ = *w;
      }
    }
    return {};
  }

  std::uint64_t add_pipe(OutputStream stream, int fd) {
    const std::uint64_t id = ++last_pipe_id_;
    std::weak_ptr<bool> alive = alive_;
    OutputPipe::Callbacks callbacks;
    callbacks.on_lines = [this, alive, stream](std::string_view lines) {
      if (!alive.expired()) on_lines(stream, lines);
    };
    callbacks.on_eof = [this, alive, id] {
      if (!alive.expired()) on_pipe_eof(id);
    };
    pipes_.emplace_back(id,
                        std::make_unique<OutputPipe>(executor_, fd, buffer_, std::move(callbacks)));
    return id;
  }

  // Writes to the stream's log, counting what is dropped; returns the
  // writer when its failing state changed with this write.
  LogWriter* write_log(OutputStream stream, std::string_view lines) {
    LogWriter* writer = (stream == OutputStream::kStdout ? out_writer_ : err_writer_).get();
    if (writer == nullptr) return nullptr;
    const bool was_failing = writer->failing();
    std::uint64_t dropped = 0;
    Status written = writer->write_lines(lines, &dropped);
    (stream == OutputStream::kStdout ? out_dropped_ : err_dropped_) += dropped;
    return writer->failing() != was_failing ? writer : nullptr;
  }

  void on_lines(OutputStream stream, std::string_view lines) {
    if (LogWriter* changed = write_log(stream, lines)) {
      // Said once when writing starts failing and once when it works again,
      // not per dropped chunk.
      Event e = make_event(changed->failing() ? EventType::kLogError : EventType::kLogResumed);
      e.path = changed->path();
      if (changed->failing()) {
        e.reason = changed->error();
        last_error_ = changed->error();
      } else {
        e.dropped = changed->dropped_while_failing();
        if (last_error_ == changed->error()) {
          // The other log may still be failing: its error is the one now.
          LogWriter* other = (changed == out_writer_.get() ? err_writer_ : out_writer_).get();
          last_error_ = other != nullptr && other->failing() ? other->error() : std::string();
        }
      }
      emit(e);
    }
    if (output_handlers_.empty()) return;
    auto snapshot = output_handlers_;
    while (!lines.empty()) {
      const auto end = lines.find('\n');
      const std::string_view line = lines.substr(0, end);
      for (const auto& [id, handler] : snapshot) {
        if (registered(output_handlers_, id)) (*handler)(stream, line);
      }
      lines.remove_prefix(end == std::string_view::npos ? lines.size() : end + 1);
    }
  }

  void on_pipe_eof(std::uint64_t id) {
    // The pipe is inside its own callback: destroy it later.
    std::weak_ptr<bool> alive = alive_;
    boost::asio::post(executor_, [this, alive, id] {
      if (alive.expired()) return;
      std::erase_if(pipes_, [id](const auto& entry) { return entry.first == id; });
    });
    Run* run = run_.get();
    if (run == nullptr) return;
    if (run->out_pipe == id) run->out_pipe = 0;
    if (run->err_pipe == id) run->err_pipe = 0;
    maybe_finish();
  }

  // --- watch --------------------------------------------------------------

  Status ensure_watcher() {
    if (options_.watch.empty() || watcher_) return {};
    FileWatcher::Options o;
    o.paths = options_.watch;
    o.ignore_globs = options_.watch_ignore;
    o.debounce = options_.watch_debounce;
    for (const auto* path :
         {&options_.logs.out_path, &options_.logs.err_path, &options_.pid_file}) {
      if (!path->empty()) o.ignore_paths.push_back(*path);
    }
    std::weak_ptr<bool> alive = alive_;
    auto watcher =
        FileWatcher::create(executor_, *clock_, o, [this, alive](const std::string& path) {
          if (alive.expired()) return;
          Event e = make_event(EventType::kWatch);
          e.path = path;
          emit(e);
          fire({Trigger::kRestart, "watched file changed: " + path});
        });
    if (!watcher) return watcher.error();
    watcher_ = std::move(*watcher);
    return {};
  }

  // --- events -------------------------------------------------------------

  // `reason` is kept for the types that report one (stop, restart); the
  // others set theirs, when they have one, themselves.
  Event make_event(EventType type, const std::string& reason = {}) const {
    Event e;
    e.type = type;
    e.time = clock_->wall_now();
    e.state = state_;
    if (run_) e.pid = run_->pid;
    if (type == EventType::kStop || type == EventType::kRestart) e.reason = reason;
    return e;
  }

  void emit_restart(int attempt, Millis delay, const std::string& reason = {}) {
    Event e = make_event(EventType::kRestart, reason);
    e.attempt = attempt;
    e.delay = delay;
    emit(e);
  }

  template <class List>
  static bool registered(const List& list, HandlerId id) {
    return std::any_of(list.begin(), list.end(), [id](const auto& e) { return e.first == id; });
  }

  // Every event carries the state it leaves the app in. It waits for the
  // action under way to finish (see fire).
  void emit(Event event) {
    event.state = state_;
    events_.push_back(std::move(event));
    if (!acting_) deliver_events();
  }

  void deliver_events() {
    if (delivering_) return;  // the delivery under way keeps the order
    delivering_ = true;
    while (!events_.empty()) {
      const Event event = std::move(events_.front());
      events_.pop_front();
      auto snapshot = event_handlers_;
      for (const auto& [id, handler] : snapshot) {
        if (registered(event_handlers_, id)) (*handler)(event);
      }
    }
    delivering_ = false;
  }

  boost::asio::any_io_executor executor_;
  MonitorOptions options_;
  std::unique_ptr<Clock> own_clock_;
  Clock* clock_ = nullptr;
  std::unique_ptr<Launcher> own_launcher_;
  Launcher* launcher_ = nullptr;
  RunKeeper* keeper_ = nullptr;
  std::string cgroup_parent_;  // where each run gets a cgroup of its own; empty: none
  RestartPolicy policy_;
  ReadyCheck ready_check_;

  State state_ = State::kStopped;
  bool wanted_up_ = false;
  bool start_after_stop_ = false;
  int restarts_ = 0;
  std::optional<ExitStatus> last_exit_;
  std::string last_error_;
  std::uint64_t out_dropped_ = 0;
  std::uint64_t err_dropped_ = 0;
  std::optional<Error> last_spawn_error_;
  std::uint64_t spawn_attempts_ = 0;
  std::string restart_reason_;  // of the restart waiting for a stop to finish

  std::deque<Input> inputs_;
  bool acting_ = false;
  std::deque<Event> events_;  // raised, not yet delivered
  bool delivering_ = false;
  std::vector<Waiter> waiters_;

  std::unique_ptr<Run> run_;
  std::unique_ptr<Run> adoption_;  // given to adopt(), until the table takes it over
  std::unique_ptr<Timer> backoff_timer_;
  std::optional<UsageSample> usage_sample_;

  SharedReadBuffer buffer_;
  std::shared_ptr<LogWriter> out_writer_;
  std::shared_ptr<LogWriter> err_writer_;
  // Pipes of the current run, and of earlier runs still held open by a
  // process that left the group; each is read to its end.
  std::vector<std::pair<std::uint64_t, std::unique_ptr<OutputPipe>>> pipes_;
  std::uint64_t last_pipe_id_ = 0;

  std::unique_ptr<FileWatcher> watcher_;

  std::vector<std::pair<HandlerId, std::shared_ptr<EventHandler>>> event_handlers_;
  std::vector<std::pair<HandlerId, std::shared_ptr<OutputHandler>>> output_handlers_;
  HandlerId last_handler_id_ = 0;

  // Destroyed first: callbacks that outlive the Impl see it expired.
  std::shared_ptr<bool> alive_;
};

Monitor::Monitor(boost::asio::any_io_executor executor, MonitorOptions options, Seams seams)
    : Monitor(std::move(executor), std::move(options), Wanted::kDown, seams) {}
Monitor::Monitor(boost::asio::any_io_executor executor, MonitorOptions options, Wanted wanted,
                 Seams seams)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(options), wanted, seams)) {}
Monitor::~Monitor() = default;
Status Monitor::start() { return impl_->start(); }
void Monitor::stop(Done done) { impl_->stop(Trigger::kStop, std::move(done)); }
void Monitor::stop_keep_wanted(Done done) {
  impl_->stop(Trigger::kStopKeepWanted, std::move(done));
}
void Monitor::restart(Done done) { impl_->restart(std::move(done)); }
Status Monitor::adopt(Adoption adoption) { return impl_->adopt(std::move(adoption)); }
void Monitor::release() { impl_->release(); }
Status Monitor::signal(int sig) { return impl_->signal(sig); }
Status Monitor::flush_logs() { return impl_->flush_logs(); }
MonitorStatus Monitor::status() const { return impl_->status(); }
MonitorUsage Monitor::usage() { return impl_->usage(); }
const MonitorOptions& Monitor::options() const { return impl_->options(); }
Monitor::HandlerId Monitor::on_event(std::function<void(const Event&)> handler) {
  return impl_->on_event(std::move(handler));
}
Monitor::HandlerId Monitor::on_output(std::function<void(OutputStream, std::string_view)> handler) {
  return impl_->on_output(std::move(handler));
}
void Monitor::remove_handler(HandlerId id) { impl_->remove_handler(id); }

}  // namespace sempre
