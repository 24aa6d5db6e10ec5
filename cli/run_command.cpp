// `sempre run`: forever's foreground mode. One Monitor on this process's
// io_context; the child's output is printed (and written to the log files
// when asked), lifecycle events go to stderr, and the process is fit to be
// a container's PID 1: a child subreaper that reaps every orphan.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "os.hpp"
#include "sempre/monitor.hpp"
#include "sempre/program.hpp"
#include "sempre/reaper.hpp"
#include "start_options.hpp"

namespace sempre::cli {
namespace {

// Best effort: on failure (a closed terminal or pipe: the output is lost, the child is not) there
// is nothing to do.
void write_all(int fd, std::string_view data) { (void)os::write_all(fd, data); }

void say(const std::string& line) { write_all(STDERR_FILENO, "sempre: " + line + "\n"); }

std::string human(const std::string& name, const Event& e) {
  switch (e.type) {
    case EventType::kStart:
      return name + " started (pid " + std::to_string(e.pid) + ")";
    case EventType::kReady:
      return name + " is running (pid " + std::to_string(e.pid) + ")";
    case EventType::kExit: {
      std::string how = !e.exit            ? "exited"
                        : e.exit->signaled ? "was killed by signal " + signal_name(e.exit->code)
                                           : "exited with code " + std::to_string(e.exit->code);
      return name + " (pid " + std::to_string(e.pid) + ") " + how + " after running " +
             format_uptime(e.uptime) + (e.reason.empty() ? "" : "; " + e.reason);
    }
    case EventType::kRestart:
      if (e.attempt > 0) {
        return name + " is crash-looping: restart " + std::to_string(e.attempt) + " in " +
               format_duration(e.delay);
      }
      return name + " restarting" + (e.delay.count() > 0 ? " in " + format_duration(e.delay) : "") +
             (e.reason.empty() ? "" : " (" + e.reason + ")");
    case EventType::kStop:
      return name + " stopped";
    case EventType::kFailed:
      return name + " failed: " + e.reason;
    case EventType::kWatch:
      return name + ": " + e.path + " changed";
    case EventType::kRotate:
      return name + ": rotated " + e.path;
    case EventType::kLogError:
      return name + ": output dropped, " + e.reason;
    case EventType::kLogResumed:
      return name + ": writing " + e.path + " again, after dropping " + std::to_string(e.dropped) +
             " bytes";
  }
  return name + ": " + describe(e);
}

int exit_code(const MonitorStatus& s, const std::optional<Error>& spawn_error) {
  if (spawn_error) {
    // A shell's codes: 127 command not found, 126 found but not executable.
    return spawn_error->os_error == ENOENT ? 127 : 126;
  }
  if (s.last_exit) return s.last_exit->shell_code();
  return s.state == State::kFailed ? kExitFailed : kExitOk;
}

int run_foreground(const StartArgs& args) {
  std::error_code ec;
  const std::string cwd = std::filesystem::current_path(ec).string();
  const std::vector<std::string> env = current_environment();
  auto app = to_app_options(args, env, cwd);
  if (!app) {
    say(app.error().message + "\nRun 'sempre run --help' for usage.");
    return kExitUsage;
  }
  if (const std::string warning = late_options_warning(args, "run"); !warning.empty()) say(warning);
  const std::string name = app->name;

  // Orphans of the child's tree are re-parented here rather than to init,
  // so they stay reaped (and are ours to clean up) even when we are not PID 1.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // A closed stdout must not kill the supervisor; the child gets SIG_DFL back.
  ::signal(SIGPIPE, SIG_IGN);

  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  signals.add(SIGUSR1);
  signals.add(SIGUSR2);
  signals.add(SIGCHLD);

  Monitor monitor(io.get_executor(), app->monitor);
  bool stopping = false;
  std::optional<Error> spawn_error;

  monitor.on_output([](OutputStream stream, std::string_view line) {
    std::string text(line);
    text += '\n';
    write_all(stream == OutputStream::kStdout ? STDOUT_FILENO : STDERR_FILENO, text);
  });
  monitor.on_event([&](const Event& e) {
    say(human(name, e));
    if (e.state == State::kExited || e.state == State::kFailed) {
      if (e.type == EventType::kExit && e.state == State::kFailed) return;  // `failed` follows
      boost::asio::post(io, [&io] { io.stop(); });
    }
  });

  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& error, int sig) {
        if (error) return;
        switch (sig) {
          case SIGINT:
          case SIGTERM:
            if (!stopping) {
              stopping = true;
              say("stopping " + name + " (" + signal_name(sig) + " received)");
              monitor.stop([&io] { io.stop(); });
            } else {
              say("killing " + name + " (" + signal_name(sig) + " received again)");
              (void)monitor.signal(SIGKILL);
            }
            break;
          case SIGCHLD:
            (void)reap_orphans();  // never the library's own children
            break;
          default:
            (void)monitor.signal(sig);
            break;
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  if (auto st = monitor.start(); !st) {
    spawn_error = st.error();
    return exit_code(monitor.status(), spawn_error);
  }
  io.run();
  (void)reap_orphans();
  return exit_code(monitor.status(), spawn_error);
}

}  // namespace

std::function<int()> define_run(CLI::App& app, const Invocation& invocation) {
  auto args = std::make_shared<StartArgs>();
  add_start_options(app, *args, invocation, StartCommand::kRun);
  app.footer(
      "sempre run prints the program's output and its lifecycle events, restarts it by the\n"
      "restart policy, and on SIGINT or SIGTERM stops it (kill signal to its process group,\n"
      "SIGKILL after the kill timeout; a second SIGINT/SIGTERM kills at once). SIGHUP, SIGUSR1\n"
      "and SIGUSR2 are forwarded to the program's process group. It exits with the program's\n"
      "last status (128+N when killed by signal N; 127/126 when it cannot be executed).");
  return [args] { return run_foreground(*args); };
}

}  // namespace sempre::cli
