// sempred: the sempre daemon, one per SEMPRE_HOME. It runs as two
// processes (keeper.hpp): the keeper, which holds the lock and the control
// socket and outlives the worker, and the worker, which owns every app's
// Monitor (through AppManager), serves the control socket and writes the
// log. Everything that can refuse a start (the home, the lock, the socket)
// is checked before it detaches, so that the `sempre` that started it can
// say why; the worker runs on one io thread and sleeps while nothing
// happens.
#include <fcntl.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app_config.hpp"
#include "app_manager.hpp"
#include "control_server.hpp"
#include "home.hpp"
#include "keeper.hpp"
#include "keeper_link.hpp"
#include "os.hpp"
#include "protocol.hpp"
#include "sempre/proc_stats.hpp"
#include "sempre/reaper.hpp"
#include "sempre/units.hpp"

#ifndef SEMPRE_VERSION
#define SEMPRE_VERSION "unknown"
#endif

namespace sempre {
namespace {

// Exit codes, documented in sempred(8).
constexpr int kExitOk = 0;
constexpr int kExitRunning = 1;      // a daemon already runs for this home
constexpr int kExitUsage = 2;        // bad command line
constexpr int kExitCannotStart = 3;  // the home or the socket was refused

constexpr const char* kLogPattern = "[%Y-%m-%d %H:%M:%S.%e] [%l] %v";

constexpr std::string_view kUsage =
    "Usage: sempred [--home DIR] [--foreground] [--ready-fd N] [--no-keeper]\n"
    "\n"
    "The sempre daemon: supervises the apps of one SEMPRE_HOME and serves its\n"
    "control socket, SEMPRE_HOME/sempre.sock. `sempre` starts it when needed.\n"
    "\n"
    "Options:\n"
    "  --home DIR     use DIR as SEMPRE_HOME (default $SEMPRE_HOME, else ~/.sempre)\n"
    "  --foreground   stay attached (no fork) and log to stderr as well; for\n"
    "                 systemd units and containers\n"
    "  --ready-fd N   once serving, write \"ready\" to descriptor N, or\n"
    "                 \"error: MESSAGE\" if the start failed, and close it\n"
    "  --no-keeper    run as one process, without the keeper that restarts the\n"
    "                 daemon when it dies and keeps the apps running meanwhile\n"
    "  --version      print the version and exit\n"
    "  -h, --help     print this help and exit\n"
    "\n"
    "sempred runs as two processes: the keeper (the pid in `sempre daemon\n"
    "status`) and its child, the worker. When the worker dies, the keeper\n"
    "starts another at once, which takes every running app over.\n"
    "\n"
    "Signals: TERM and INT stop every app and then the daemon (the apps stay\n"
    "wanted up, so the next daemon starts them again); HUP reopens the log\n"
    "and reloads the config files the apps were started from.\n"
    "\n"
    "Exit status: 0 after a clean stop, 1 when a daemon already runs for the\n"
    "home, 2 on a usage error, 3 when the home or the control socket is refused.\n";

// Best effort: on failure (the reader is gone: nobody is left to tell) there is nothing to do.
void write_all(int fd, std::string_view data) { (void)os::write_all(fd, data); }

struct Options {
  std::string home;  // empty: resolve_home()
  bool foreground = false;
  int ready_fd = -1;
  bool no_keeper = false;
  // The worker's, from the keeper (internal options, not in --help).
  bool worker = false;
  int keeper_fd = -1;
  int listen_fd = -1;
  int lock_fd = -1;
  // The keeper's, after it replaced itself: its state (keeper::resume_keeper).
  int keeper_resume_fd = -1;
  bool check = false;  // with --keeper-resume: a dry run
};

// Where start-up ends up: "ready" or the reason it failed go to the ready
// descriptor when the starting CLI gave one, else to stderr.
class StartReport {
 public:
  explicit StartReport(int ready_fd) : fd_(ready_fd) {}
  StartReport(const StartReport&) = delete;
  StartReport& operator=(const StartReport&) = delete;

  // Gives the descriptor to someone else to report on (the keeper's worker).
  int release() { return std::exchange(fd_, -1); }

  // A worker's failure also goes to the daemon's log, where the keeper says
  // that it starts workers again: no one else reads the worker's stderr.
  void log_failures_to(std::string path) { log_path_ = std::move(path); }

  void ready() {
    if (fd_ < 0) return;
    write_all(fd_, "ready\n");
    finish();
  }

  int fail(int exit_code, const std::string& message) {
    if (!log_path_.empty()) {
      keeper::append_log_line(
          log_path_, "worker",
          "sempred worker " + std::to_string(::getpid()) + " cannot start: " + message, false);
    }
    if (fd_ >= 0) {
      write_all(fd_, "error: " + message + "\n");
      finish();
    } else {
      write_all(STDERR_FILENO, "sempred: " + message + "\n");
    }
    return exit_code;
  }

 private:
  void finish() {
    ::close(fd_);
    fd_ = -1;
  }

  int fd_;
  std::string log_path_;
};

// Parses the command line. Returns an exit code when there is nothing more
// to do (help, version, usage error).
std::optional<int> parse_options(int argc, char** argv, Options& options) {
  auto usage_error = [](const std::string& message) {
    write_all(STDERR_FILENO, "sempred: " + message + "\nTry 'sempred --help'.\n");
    return kExitUsage;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto take_value = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= argc) return false;
      value = argv[++i];
      return true;
    };
    if (arg == "-h" || arg == "--help") {
      write_all(STDOUT_FILENO, kUsage);
      return kExitOk;
    }
    if (arg == "--version") {
      write_all(STDOUT_FILENO, std::string("sempred ") + SEMPRE_VERSION + " (protocol " +
                                   std::to_string(protocol::kVersion) + ")\n");
      return kExitOk;
    }
    if (arg == "--foreground") {
      if (has_value) return usage_error("--foreground takes no value");
      options.foreground = true;
    } else if (arg == "--home") {
      if (!take_value() || value.empty()) return usage_error("--home needs a directory");
      options.home = std::string(value);
    } else if (arg == "--ready-fd" || arg == "--keeper-fd" || arg == "--listen-fd" ||
               arg == "--lock-fd" || arg == "--keeper-resume") {
      const std::string name(arg);
      if (!take_value()) return usage_error(name + " needs a descriptor number");
      int fd = -1;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), fd);
      if (ec != std::errc() || end != value.data() + value.size() || fd < 0) {
        return usage_error(name + ": not a descriptor number: " + std::string(value));
      }
      if (::fcntl(fd, F_GETFD) < 0) {
        return usage_error(name + ": descriptor " + std::to_string(fd) + " is not open");
      }
      (arg == "--ready-fd"        ? options.ready_fd
       : arg == "--keeper-fd"     ? options.keeper_fd
       : arg == "--listen-fd"     ? options.listen_fd
       : arg == "--keeper-resume" ? options.keeper_resume_fd
                                  : options.lock_fd) = fd;
    } else if (arg == "--check") {
      options.check = true;
    } else if (arg == "--no-keeper") {
      options.no_keeper = true;
    } else if (arg == "--worker") {
      options.worker = true;
    } else {
      return usage_error("unknown argument: " + std::string(arg));
    }
  }
  if (options.check && options.keeper_resume_fd < 0) {
    return usage_error("--check goes with --keeper-resume");
  }
  if (options.worker && (options.keeper_fd < 0 || options.listen_fd < 0 || options.lock_fd < 0)) {
    return usage_error("--worker is started by the keeper, with its descriptors");
  }
  return std::nullopt;
}

// A daemon lives long: whatever its starter leaked to it (a pipe a test
// harness waits on to close, a terminal) must not be kept open, and the
// signal state it inherited must not be the one it runs with.
void reset_process_state(Options& options) {
  int* const kept[] = {&options.ready_fd, &options.keeper_fd, &options.listen_fd, &options.lock_fd};
  for (int* fd : kept) {
    if (*fd >= 0 && *fd <= STDERR_FILENO) {
      // stdio is pointed at /dev/null when detaching.
      *fd = ::fcntl(*fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    }
  }
  std::vector<int> keep;
  for (int* fd : kept) {
    if (*fd < 0) continue;
    ::fcntl(*fd, F_SETFD, FD_CLOEXEC);
    keep.push_back(*fd);
  }
  std::sort(keep.begin(), keep.end());
  unsigned next = STDERR_FILENO + 1;
  for (int fd : keep) {
    if (static_cast<unsigned>(fd) > next) ::close_range(next, static_cast<unsigned>(fd) - 1, 0);
    next = static_cast<unsigned>(fd) + 1;
  }
  ::close_range(next, ~0U, 0);
  // A worker keeps TERM, INT and HUP blocked (as the keeper started it)
  // until its handlers exist; anything else starts with an empty mask.
  sigset_t mask;
  sigemptyset(&mask);
  if (options.worker) {
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
  }
  ::sigprocmask(SIG_SETMASK, &mask, nullptr);
  // A client that hangs up must not kill the daemon, nor a log that reaches
  // a file size limit (ulimit -f, LimitFSIZE=): the write fails with EFBIG
  // and the lines are counted as dropped. Children get SIG_DFL back.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);
}

// The path of this program, for the keeper to run the worker from: the
// binary installed there then (after an upgrade, the new one).
std::string own_path() {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("/proc/self/exe") : path.string();
}

// Forks; the parent exits at once (the starting CLI waits for it), the
// child leaves the caller's session and terminal behind.
Status detach() {
  const pid_t pid = ::fork();
  if (pid < 0) return os_error(errno, "cannot fork");
  if (pid > 0) ::_exit(kExitOk);
  if (::setsid() < 0) return os_error(errno, "setsid");
  if (::chdir("/") != 0) return os_error(errno, "chdir /");
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return os_error(errno, "cannot open /dev/null");
  for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; ++fd) {
    if (::dup2(null, fd) < 0) return os_error(errno, "cannot redirect stdio to /dev/null");
  }
  if (null > STDERR_FILENO) ::close(null);
  return {};
}

// The daemon's log file sink. spdlog opens it without CLOEXEC; marking
// every descriptor that exists now keeps it out of the apps.
Result<spdlog::sink_ptr> open_log_sink(const std::string& path, const DaemonSettings& settings) {
  try {
    auto sink = std::make_shared<spdlog::sinks::rotating_file_sink_st>(
        path, static_cast<std::size_t>(settings.log_max_size),
        static_cast<std::size_t>(settings.log_keep));
    ::close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC);
    return spdlog::sink_ptr(std::move(sink));
  } catch (const std::exception& e) {
    return Error{ErrorKind::kIo, "cannot open the log " + path + ": " + e.what(), 0};
  }
}

// After logrotate moved the file away, a new one is opened under the name.
void reopen_log(spdlog::logger& log, const std::string& path, const DaemonSettings& settings) {
  auto sink = open_log_sink(path, settings);
  if (!sink) {
    log.error("SIGHUP: {}; still writing to the old file", sink.error().message);
    return;
  }
  log.flush();
  log.sinks()[0] = std::move(*sink);
  log.set_pattern(kLogPattern);
  log.info("SIGHUP: reopened {}", path);
}

// The daemon is a subreaper: the orphans of every app's process tree become
// its children. It reaps them, but never a child of the monitor library (an
// app's main process, a readiness check), which the library reaps itself.
// Where each app's runs get cgroups of their own: sempre-UID-HASH under the
// daemon's own cgroup, one per home (HASH: of its path), so that daemons of
// several homes never share one. Empty when cgroups are off or none can be
// made here; the apps' process trees are tracked then.
std::string app_cgroup_parent(const HomePaths& paths, const DaemonSettings& settings,
                              spdlog::logger& log) {
  if (!settings.cgroups) {
    log.info("cgroups off ([daemon] cgroups = false): apps are held by their process trees");
    return {};
  }
  std::uint32_t hash = 2166136261u;  // FNV-1a
  for (unsigned char c : paths.home) hash = (hash ^ c) * 16777619u;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", hash);
  Result<std::string> dir = make_cgroup_parent("sempre-" + std::to_string(::getuid()) + "-" + hex);
  if (!dir) {
    log.info("no cgroup of its own for each app ({}): apps are held by their process trees",
             dir.error().message);
    return {};
  }
  log.info("each app runs in a cgroup of its own under {}", *dir);
  return *dir;
}

void reap_strays(spdlog::logger& log) {
  for (const ReapedChild& child : reap_orphans()) log.debug("reaped orphan {}", child.pid);
}

int run_daemon(Options options) {
  reset_process_state(options);
  StartReport report(options.ready_fd);

  std::string home = options.home.empty() ? resolve_home() : options.home;
  if (!options.home.empty()) {
    std::error_code ec;
    auto absolute = std::filesystem::absolute(home, ec);
    if (!ec) home = absolute.lexically_normal().string();
    while (home.size() > 1 && home.back() == '/') home.pop_back();
  }
  const HomePaths paths = home_paths(home);
  if (options.worker) report.log_failures_to(paths.log);

  if (auto st = prepare_home(paths); !st) return report.fail(kExitCannotStart, st.error().message);
  // SEMPRE_HOME/config.toml: the daemon's own settings; an error there stops
  // the start, with every problem named FILE:LINE:COLUMN.
  const DaemonSettings settings = load_daemon_settings(paths.home + "/config.toml");
  if (!settings.errors.empty()) {
    std::string message;
    for (const ConfigError& e : settings.errors) message += (message.empty() ? "" : "; ") + e.str();
    return report.fail(kExitUsage, message);
  }
  Result<int> listen_fd = options.listen_fd;
  if (!options.worker) {
    auto lock = take_daemon_lock(paths);
    if (!lock) {
      return report.fail(lock.error().kind == ErrorKind::kExists ? kExitRunning : kExitCannotStart,
                         lock.error().message);
    }
    listen_fd = bind_control_socket(paths.socket);
    if (!listen_fd) return report.fail(kExitCannotStart, listen_fd.error().message);

    if (!options.foreground) {
      if (auto st = detach(); !st) {
        ::unlink(paths.socket.c_str());
        return report.fail(kExitCannotStart, st.error().message);
      }
      (void)record_daemon_pid(*lock);
    }
    if (!options.no_keeper) {
      keeper::KeeperOptions keeper;
      keeper.program = own_path();
      keeper.args = {"--worker", "--home", paths.home};
      if (options.foreground) keeper.args.emplace_back("--foreground");
      keeper.listen_fd = *listen_fd;
      keeper.lock_fd = *lock;
      keeper.log_path = paths.log;
      keeper.log_to_stderr = options.foreground;
      keeper.ready_fd = report.release();
      return keeper::run_keeper(keeper);
    }
  }
  // Orphans of the apps' process trees come to us rather than to init, so
  // that they are reaped and no app leaves zombies behind.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  auto file_sink = open_log_sink(paths.log, settings);
  if (!file_sink) {
    ::unlink(paths.socket.c_str());
    return report.fail(kExitCannotStart, file_sink.error().message);
  }
  // The logger holds the only reference to the file sink, so that SIGHUP's
  // reopen really closes the old file.
  auto log = std::make_shared<spdlog::logger>("sempred", std::move(*file_sink));
  if (options.foreground) log->sinks().push_back(std::make_shared<spdlog::sinks::stderr_sink_st>());
  log->set_pattern(kLogPattern);
  log->set_level(spdlog::level::info);
  // Written as it happens, without a flush thread: idle means idle.
  log->flush_on(spdlog::level::info);

  boost::asio::io_context io(1);
  boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  signals.add(SIGCHLD);
  {
    // Handled from now on (a signal the keeper forwarded meanwhile too).
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
  }

  std::unique_ptr<KeeperLink> keeper;
  if (options.worker) {
    auto link = KeeperLink::open(io.get_executor(), options.keeper_fd, log);
    if (!link) {
      ::unlink(paths.socket.c_str());
      log->error("cannot take the keeper's hand-over: {}", link.error().message);
      return report.fail(kExitCannotStart, link.error().message);
    }
    keeper = std::move(*link);
    keeper->on_lost([log, lock_fd = options.lock_fd] {
      // The lock names the daemon's pid: now this one's.
      (void)record_daemon_pid(lock_fd);
      log->warn("the keeper is gone: serving on alone (pid {})", ::getpid());
    });
  }

  std::unique_ptr<AppManager> manager;
  std::unique_ptr<ControlServer> server;
  std::string cgroup_parent;
  try {
    MonitorSeams seams;
    seams.cgroup_parent = app_cgroup_parent(paths, settings, *log);
    cgroup_parent = seams.cgroup_parent;
    manager = std::make_unique<AppManager>(io.get_executor(), paths, log, seams);
    manager->set_keeper(keeper.get());
    auto created =
        ControlServer::create(io.get_executor(), *listen_fd, *manager, log, settings.max_clients);
    if (!created) {
      ::unlink(paths.socket.c_str());
      log->error("{}", created.error().message);
      return report.fail(kExitCannotStart, created.error().message);
    }
    server = std::move(*created);
  } catch (const std::exception& e) {
    ::unlink(paths.socket.c_str());
    log->critical("cannot start: {}", e.what());
    return report.fail(kExitCannotStart, std::string("cannot start: ") + e.what());
  }

  bool stopping = false;
  // Stops serving and exits once the sessions had their last answer. The
  // socket file goes first, while the lock is still ours.
  auto stop_serving = [&] {
    ::unlink(paths.socket.c_str());
    server->close([&] {
      log->info("sempred stopped");
      io.stop();
    });
  };
  bool reexec = false;
  manager->set_on_reexec([&] {
    reexec = true;
    stopping = true;
    log->info("handing the apps over to the next worker");
    // The socket file stays: the keeper holds the socket, and clients wait
    // in its backlog for the next worker.
    server->close([&] { io.stop(); });
  });
  manager->set_on_kill([&] {
    stopping = true;
    log->info("every app stopped on request: exiting");
    stop_serving();
  });

  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        switch (sig) {
          case SIGTERM:
          case SIGINT:
            if (stopping) {
              log->info("SIG{} received again: still stopping", signal_name(sig));
              break;
            }
            stopping = true;
            log->info("SIG{} received: stopping every app, then exiting", signal_name(sig));
            manager->shutdown(stop_serving);
            break;
          case SIGHUP:
            reopen_log(*log, paths.log, settings);
            manager->reload_sources();
            break;
          case SIGCHLD:
            reap_strays(*log);
            break;
          default:
            break;
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  if (keeper) {
    log->info("sempred {} worker started (pid {}, keeper {}, protocol {}) for {}", SEMPRE_VERSION,
              ::getpid(), keeper->keeper_pid(), protocol::kVersion, paths.home);
  } else {
    log->info("sempred {} started (pid {}, protocol {}) for {}", SEMPRE_VERSION, ::getpid(),
              protocol::kVersion, paths.home);
  }
  report.ready();
  try {
    manager->restore();
  } catch (const std::exception& e) {
    log->error("restoring the saved apps failed: {}", e.what());
  }
  // Only a worker that got this far is replaced at once when it dies.
  if (keeper) keeper->ready();

  for (;;) {
    try {
      io.run();
      break;
    } catch (const std::exception& e) {
      // A handler broke the rule that no exception leaves it: keep serving.
      log->critical("unexpected exception: {}", e.what());
    }
  }
  if (reexec) {
    manager->release_all();
    // The keeper replaces itself too, with the binary now installed.
    keeper->finish("upgrade");
    return keeper::kRestartCode;
  }
  if (keeper) keeper->finish("exit");
  server.reset();
  manager.reset();
  reap_strays(*log);
  // Empty once every app is gone; a run still ending keeps it (harmless).
  if (!cgroup_parent.empty()) ::rmdir(cgroup_parent.c_str());
  return kExitOk;
}

}  // namespace
}  // namespace sempre

int main(int argc, char** argv) {
  sempre::Options options;
  if (auto code = sempre::parse_options(argc, argv, options)) return *code;
  if (options.keeper_resume_fd >= 0) {
    return sempre::keeper::resume_keeper(options.keeper_resume_fd, options.check);
  }
  return sempre::run_daemon(std::move(options));
}
